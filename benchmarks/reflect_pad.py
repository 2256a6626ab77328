"""The reflect-padded encoder, old pad (nn.Conv2d's F.pad) vs train/reflect.py's, side by side in one run.

    python -m benchmarks.reflect_pad [--batch 8] [--size 128] [--repeats 5]

Forward + backward of the ResNet-18 encoder (output stride 8, channels_last, fp32) on the same input, the two
pads alternating per repeat; prints the median seconds of each, their ratio, and whether outputs match.
"""
import argparse
import statistics
import sys
import time

import torch
import torch.nn as nn

from spixwalk.train.model import Encoder
from spixwalk.train.reflect import ReflectConv2d


def set_pad(enc: nn.Module, cls) -> None:
    for m in enc.modules():
        if isinstance(m, nn.Conv2d) and m.padding_mode == "reflect":
            m.__class__ = cls


def step(enc, x) -> tuple[float, torch.Tensor]:
    t0 = time.perf_counter()
    y = enc(x)
    y.float().square().mean().backward()
    return time.perf_counter() - t0, y.detach()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.reflect_pad", description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="cpu")
    a = p.parse_args(argv)
    torch.manual_seed(0)
    enc = Encoder(padding="reflect").to(a.device).to(memory_format=torch.channels_last)
    x = torch.randn(a.batch, 3, a.size, a.size, device=a.device).contiguous(memory_format=torch.channels_last)
    times = {"F.pad (old)": [], "reflect_pad (new)": []}
    outs = {}
    for _ in range(a.repeats + 1):  # the first round warms both up and is not timed
        for name, cls in (("F.pad (old)", nn.Conv2d), ("reflect_pad (new)", ReflectConv2d)):
            set_pad(enc, cls)
            enc.zero_grad(set_to_none=True)
            t, outs[name] = step(enc, x)
            times[name].append(t)
    med = {k: statistics.median(v[1:]) for k, v in times.items()}
    same = torch.equal(*outs.values())
    print(f"encoder fwd+bwd, batch {a.batch} x {a.size} px, {a.device}, {torch.get_num_threads()} threads, "
          f"median of {a.repeats}:")
    for k, v in med.items():
        print(f"  {k:<18} {v:.3f} s")
    print(f"  new / old: {med['reflect_pad (new)'] / med['F.pad (old)']:.2f}x time; outputs identical: {same}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
