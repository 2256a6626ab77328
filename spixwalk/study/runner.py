"""The study's work, done by the real stages as child processes: the store, one run's training, one snapshot's scores.

Every child gets the study's stop signals (spixwalk.children: SIGTERM, SIGINT, SIGUSR1) and is waited for, so a
stopped study leaves each trainer's checkpoint at its last finished step; the next invocation resumes it.
Scores are kept per encoder (a hash of its weights) and evaluation setting, so identical weights (every
arm's step 0 of a seed) are scored once and a rerun scores nothing twice.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
from pathlib import Path

from spixwalk import children
from spixwalk.preprocess import spconfig
from spixwalk.train import recipes

from .plan import Run



class StudyError(Exception):
    pass


class Stopped(Exception):
    """A stop signal reached the study: its children were told and waited for (spixwalk.children)."""


def stage(args: list[str], what: str, log: Path | None = None) -> None:
    """`python -m <args>` as a child that gets the study's stop signals; StudyError naming `what` and the
    child's last line when it fails."""
    out = open(log, "a") if log else subprocess.DEVNULL
    try:
        r = children.run([sys.executable, "-m", *args], stdout=out, stderr=subprocess.PIPE, text=True)
    finally:
        if log:
            out.close()
    if r.signal:
        raise Stopped(what)
    if r.returncode != 0:
        tail = ((r.stderr or "").strip().splitlines() or ["(no output)"])[-1]
        raise StudyError(f"{what} failed (exit {r.returncode}): {tail}")


def label_configs(arms: list[str]) -> list[str]:
    return sorted({recipes.ARMS[a]["label_config"] for a in arms if "label_config" in recipes.ARMS[a]})


def preprocess_args(cfg: str) -> list[str]:
    """`python -m spixwalk.preprocess` options that produce label configuration `cfg`."""
    alg, params = spconfig.parse_name(cfg)
    out = ["--alg", alg]
    for opt, _, opt_alg, key, _, _ in spconfig.OPTIONS:
        if key in params and (opt_alg == alg or (key == "n_segments" and alg in spconfig.CONTROLS)):
            out += [opt, str(params[key])]
    return out


def build_store(videos: str, work: Path, arms: list[str]) -> Path:
    """Manifest of the training videos and every label configuration the arms need (finished shards kept)."""
    store, manifest = work / "store", work / "manifest.jsonl"
    if not manifest.exists():
        stage(["spixwalk.data_manifest", "build", "--videos", videos, "--shard-size", "4", "--out", str(manifest)],
                 "data_manifest build")
    for cfg in label_configs(arms) or ["slic-n30-c30"]:
        stage(["spixwalk.preprocess", "--manifest", str(manifest), "--store", str(store), *preprocess_args(cfg),
                  "--jobs", "2"], f"preprocess {cfg}")
    return store


def run_dir(work: Path, run: Run) -> Path:
    return work / "runs" / run.arm / run.cell / f"seed{run.seed}"


def train(a, store: Path, run: Run, steps: list[int]) -> Path:
    """Train one run to its last budget, keeping a snapshot at step 0 and at every budget's step."""
    out = run_dir(a.work, run)
    done = out / "summary.json"
    if done.exists() and json.loads(done.read_text()).get("steps") == steps[-1]:
        return out  # trained to its budget before: no process to start
    cell = recipes.GRID[run.cell]
    cell_args = [x for k, v in cell.items() for x in (f"--{k.replace('_', '-')}", str(v))]
    every = max(1, min(10, steps[-1]))
    shape = [x for k in ("img_size", "batch") if getattr(a, k) for x in (f"--{k.replace('_', '-')}", str(getattr(a, k)))]
    stage(["spixwalk.train", "--store", str(store), "--preset", f"study-{run.arm}", *cell_args, *shape,
              "--seed", str(run.seed), "--steps", str(steps[-1]), "--snapshot-steps", ",".join(map(str, [0, *steps])),
              "--workers", "0", "--threads", str(a.threads), "--device", a.device, "--log-every", "1",
              "--ckpt-every", str(every), "--run", str(out)], f"training {run.name}", log=a.work / "logs.txt")
    return out


def encoder_hash(ckpt: dict) -> str:
    h = hashlib.sha1()
    for k, v in sorted(ckpt["model"].items()):
        if k.startswith("encoder."):
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_LOCK = threading.Lock()


def score(a, snap: Path, key: str) -> dict:
    """{'davis': metrics json, 'pck': pck rows or None} of one snapshot (cached under WORK/eval/<key>); runs
    that share weights (a seed's step 0) share one scoring: the second waits for the first and reads it."""
    with _LOCKS_LOCK:
        lock = _LOCKS.setdefault(key, threading.Lock())
    with lock:
        return _score(a, snap, key)


def metrics_path(work: Path, key: str) -> Path:
    """Where the J&F of encoder (or baseline) `key` is kept: it exists once the encoder is scored."""
    return work / "eval" / key / "davis" / "metrics-val.json"


def _score(a, snap: Path, key: str) -> dict:
    metrics = metrics_path(a.work, key)
    davis, out = metrics.parent, metrics.parent.parent
    scale = ["--eval-scale", f"{a.eval_scale:g}"] if a.eval_scale != 1 else []
    common = ["--threads", str(a.threads), "--device", a.device, *scale]
    feats = ["--features", "rgb"] if snap.name == "rgb" else ["--ckpt", str(snap)]
    if not metrics.exists():
        stage(["spixwalk.evaluate", "davis", "--davis", a.davis, "--set", "val", "--sequences",
                  ",".join(a.scored_list), *feats, "--out", str(davis), "--no-overlays", "--no-metrics", *common],
                 f"evaluating {key}")
        stage(["spixwalk.evaluate", "metrics", "--davis", a.davis, "--set", "val", "--sequences",
                  ",".join(a.scored_list), "--results", str(davis), *scale],
                 f"scoring {key}")
    res = json.loads(metrics.read_text())
    if not res.get("complete"):
        raise StudyError(f"{metrics}: not every sequence scored ({res.get('failures')})")
    pck = None
    if a.keypoints:
        kp = out / "keypoints"
        if not (kp / "pck.csv").exists():
            stage(["spixwalk.evaluate", "keypoints", "--dataset", "badja", "--root", a.davis, "--annotations",
                      a.keypoints, *feats, "--out", str(kp), *common], f"keypoints {key}")
        pck = (kp / "pck.csv").read_text()
    return {"davis": res, "pck": pck}
