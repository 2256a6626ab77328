"""How well a trained walk walks on videos it never saw: the palindrome walk's cycle accuracy and loss of training
checkpoints on fixed clips of a store (`evaluate walk`).

Every checkpoint is scored with the options it was trained with (nodes, label configuration, clip length,
cycles, temperature, crop) on the same clips drawn with `--seed`, in the same batches, with batch statistics as in
training and without edge dropout, so a run's step-0 snapshot and its final checkpoint are compared on identical
inputs. Accuracy is the share of start nodes a cycle walk returns to, averaged over the cycle lengths; chance is
about 1 / nodes per frame.
This is the training objective measured on held-out clips: it shows that a short run learns long before label
propagation (J&F) does.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

from spixwalk.files import check_out, write_atomic

COLUMNS = ("checkpoint", "step", "nodes", "clips", "loss", "accuracy", "chance")


class WalkInputError(ValueError):
    """A checkpoint or store this command cannot score (exit 2)."""


def _config(path) -> tuple[dict, argparse.Namespace]:
    from spixwalk.train.weights import WeightsError, config_of, read

    try:
        obj = read(path)
    except WeightsError as e:
        raise WalkInputError(str(e)) from None
    cfg = config_of(obj) if isinstance(obj, dict) else {}
    if "model" not in obj or not {"nodes", "clip_len", "cycles", "tau"} <= set(cfg):
        raise WalkInputError(f"{path}: not a spixwalk training checkpoint (no walk options recorded with it)")
    return obj, argparse.Namespace(**cfg)


def _clips(store: str, a: argparse.Namespace, seed: int, n: int):
    """The first `n` clips of the store under the run's options, augmented by the generator of `seed`."""
    from spixwalk.preprocess.store import StoreReader
    from spixwalk.train.data import Aug, ClipDataset
    from spixwalk.train.options import BadInput
    from spixwalk.train.selection import clips_of, label_configs

    a.store, a.world = store, 1
    try:
        reader = StoreReader(store)
        cfgs = label_configs(reader, a)
        clips = clips_of(reader, cfgs, a)
    except (BadInput, FileNotFoundError) as e:
        raise WalkInputError(str(e)) from None
    ds = ClipDataset(reader, clips, a.clip_len, cfgs, a.nodes, a.patch_prob, seed,
                     Aug.from_transforms(a.frame_transforms, a.img_size))
    return [ds[(0, i)] for i in range(min(n, len(clips)))]


def score(path, store: str, n_clips: int = 32, seed: int = 0, batch: int = 4, loaded=None, clips=None) -> dict:
    """One checkpoint's mean walk loss and cycle accuracy on the store's first clips (`loaded`: what _config(path)
    returned, where the caller has read the file already; `clips`: a dict that keeps decoded clips for the next
    checkpoint recorded with the same options, e.g. a run's step 0 and its final checkpoint)."""
    import torch

    from spixwalk.train.data import collate
    from spixwalk.train.model import WalkNet, patch_grid
    from spixwalk.train.walk import walk_loss

    obj, a = loaded or _config(path)
    key = json.dumps(vars(a), sort_keys=True, default=str)  # before _clips sets store and world on `a`
    clips = {} if clips is None else clips
    if key not in clips:
        clips[key] = [it for it in _clips(store, a, seed, n_clips) if it is not None]
    items = clips[key]
    if not items:
        raise WalkInputError(f"store {store}: no readable clip")
    net = WalkNet(*patch_grid(a.img_size), padding=a.padding, norm=a.norm, patch_jitter=a.patch_jitter)
    net.load_state_dict(obj["model"])
    # batch statistics, as the walk trains: the running statistics of a network at step 0 are the identity, under
    # which CRW's 49 patches of a frame all get nearly the same feature (the walk then scores chance exactly)
    net.train()
    loss = acc = nodes = 0.0
    with torch.no_grad():
        for i in range(0, len(items), batch):
            b = collate(items[i:i + batch])
            q = net(b["frames"], b["weights"], tuple(b["patch"].tolist()))
            l, _, accs = walk_loss(q.float(), b["mask"], a.tau, 0.0, a.cycles, drop_mode=a.edge_drop_mode)
            k = len(b["frames"])
            loss += l.item() * k
            acc += sum(v.item() for v in accs.values()) / len(accs) * k
            nodes += b["mask"].sum().item() / b["mask"].shape[1]
    n = len(items)
    return {"checkpoint": str(path), "step": obj.get("step", ""), "nodes": a.nodes, "clips": n,
            "loss": loss / n, "accuracy": acc / n, "chance": n / nodes}


def table(rows: list[dict]) -> str:
    out = io.StringIO()
    w = csv.DictWriter(out, COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: f"{v:.4f}" if isinstance(v, float) else v for k, v in r.items()})
    return out.getvalue()


def verdicts(rows: list[dict]) -> list[str]:
    """One plain line per run folder scored both at step 0 and later: did the walk get better at walking?"""
    lines = []
    for run in dict.fromkeys(Path(r["checkpoint"]).parent for r in rows):
        mine = [r for r in rows if Path(r["checkpoint"]).parent == run]
        first = [r for r in mine if r["step"] == 0]
        for r in (r for r in mine if first and r["step"] not in (0, "")):
            better = r["accuracy"] > first[0]["accuracy"]
            lines.append(f"{run.name}: walk accuracy on held-out clips {r['accuracy']:.3f} at step {r['step']} vs "
                         f"{first[0]['accuracy']:.3f} at step 0 (chance {r['chance']:.3f}): "
                         + ("learned" if better else "did NOT learn"))
    return lines


def cmd_walk(args) -> int:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        if args.clips < 1:
            raise WalkInputError(f"--clips {args.clips}: must be at least 1")
        if args.out:
            check_out(args.out)
        loaded = [_config(c) for c in args.ckpt]  # every file checked before any is scored
        clips: dict = {}
        rows = [score(c, args.store, args.clips, args.seed, loaded=x, clips=clips) for c, x in zip(args.ckpt, loaded)]
    except (WalkInputError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    text = table(rows)
    print(text, end="")
    for line in verdicts(rows):
        print(line)
    if args.out:
        write_atomic(Path(args.out), text)
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("walk", help="walk loss and cycle accuracy of training checkpoints on clips of a store "
                       "they did not train on (step 0 beside the final checkpoint shows what a run learned)")
    p.add_argument("--store", required=True, help="a store (preprocess) of held-out videos, with the label "
                   "configuration the checkpoints trained on")
    p.add_argument("--ckpt", action="append", required=True, help="a training checkpoint or snapshot (repeat)")
    p.add_argument("--clips", type=int, default=32, help="score the store's first N clips")
    p.add_argument("--seed", type=int, default=0, help="draws the clips' crops: the same clips for every checkpoint")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    p.add_argument("--out", default=None, help="also write the table to this CSV file")
    p.set_defaults(func=cmd_walk)
