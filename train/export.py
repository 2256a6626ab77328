"""python -m train export --run DIR --out encoder.pt: the trained encoder, weights only, for downstream use.

The file is a dict of plain types and tensors (loads with torch.load(weights_only=True)):
  state_dict  torchvision resnet18 names and shapes (conv1 ... layer4, no fc): resnet18().load_state_dict(
              d["state_dict"], strict=False) leaves only fc missing. layer3/layer4 run at stride 1 in spixwalk.
  padding     the encoder's conv padding mode ("zeros" unless the run set another)
  config      the run's resolved training options (with padding), as in RUN/config.json
  meta        format, steps, data (store, label configurations, clips), source checkpoint, torch version
`python -m evaluate davis --ckpt encoder.pt` reads it (train/weights.py).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from spixwalk.files import atomic_path, check_out
from spixwalk.options import stage_parser

from . import digest
from .weights import EXPORT_FORMAT, WeightsError, read, resnet_state


def export(ckpt_path: Path, out: Path) -> dict:
    obj = read(ckpt_path)
    state, config, kind = resnet_state(obj, ckpt_path)
    if kind != "spixwalk":
        raise ValueError(f"{ckpt_path}: not a spixwalk training checkpoint (found {kind} weights)")
    config = json.loads(json.dumps(config, default=str))  # plain types only: weights_only loading
    config.setdefault("padding", "zeros")
    meta = {"format": EXPORT_FORMAT, "version": 1, "arch": "resnet18", "output_stride": 8,
            "steps": int(obj.get("step", 0)), "source": str(ckpt_path), "torch": str(torch.__version__),
            "data": {k: config.get(k) for k in ("store", "label_configs", "clips", "nodes", "img_size")}}
    record = {"state_dict": {k: v.detach().cpu().contiguous() for k, v in state.items()},
              "padding": config["padding"], "config": config, "meta": meta}
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        torch.save(record, tmp)
        digest.record(out, digest.sha256_of(tmp))
    return meta


def main(argv=None) -> int:
    p = stage_parser("python -m train export", description=__doc__.split("\n")[0])
    p.add_argument("--run", required=True, help="training run directory")
    p.add_argument("--checkpoint", default=None,
                   help="checkpoint file to export (default RUN/checkpoint.pt; e.g. RUN/checkpoint-0001000.pt)")
    p.add_argument("--out", required=True, help="encoder file to write")
    a = p.parse_args(argv)
    src = Path(a.checkpoint) if a.checkpoint else Path(a.run) / "checkpoint.pt"
    try:
        check_out(a.out)
        meta = export(src, Path(a.out))
    except (WeightsError, ValueError) as e:
        print(f"[export] error: {e}", file=sys.stderr)
        return 2
    print(f"[export] {src} (step {meta['steps']}) -> {a.out}")
    return 0
