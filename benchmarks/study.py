"""Learning-signal study (`make study`): J&F vs training seconds for superpixel, patch, mixed and random-cell nodes.

Trains through the real stages on video that is never scored (`--train-videos`: data_manifest -> preprocess
-> train) and scores on DAVIS-2016 (`--davis`, `--scored`) with `evaluate davis` + `evaluate metrics`.
Every mode starts from the same initial weights and seed; its step-0 snapshot is its baseline (identical
weights are scored once). Snapshots at `--points` log-spaced points of `--budget` seconds: CPU seconds of
the training process on the CPU, device-busy seconds on CUDA. When patches train too, superpixels keep one
more snapshot at the patches' final step: the comparison at equal clips seen. `--jobs` trains and scores
that many modes at once (superpixels start once patches are trained). Writes WORK/study.csv,
study_per_sequence.csv, study_comparisons.csv, study.png and study.md; reruns reuse trainings and scores.
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see spixwalk/__init__.py

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ThreadPoolExecutor, as_completed  # noqa: E402
from pathlib import Path  # noqa: E402

from benchmarks import study_report as report  # noqa: E402
from spixwalk import children  # noqa: E402
from spixwalk.train.options import LR_SCHEDULES, PRECISIONS, cpu_has_bf16  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
MODES = ("patches", "superpixels", "mixed", "random-cells")  # patches first: superpixels need its final step
NODE_ARGS = {"patches": ["--nodes", "patches"], "superpixels": ["--nodes", "superpixels", "--label-config", "slic-n30-c30"],
             "mixed": ["--nodes", "mixed", "--label-config", "slic-n30-c30"],
             "random-cells": ["--nodes", "superpixels", "--label-config", "random-n30"]}
LABEL_ALGS = {"superpixels": "slic", "mixed": "slic", "random-cells": "random"}


# The recipe per device; README "Learning-signal study" states the figure behind each choice.
RECIPES = {
    "cpu": {"budget": 2400, "points": 3, "img_size": 256, "batch": 4, "lr": 3e-4, "lr_schedule": "cosine",
            "warmup_steps": 10, "eval_scale": 0.5, "workers": 0, "log_every": 1, "jobs": 2, "threads": 1,
            "precision": "bf16" if cpu_has_bf16() else "fp32"},
    "cuda": {"budget": 60, "points": 3, "img_size": 256, "batch": 32, "lr": 3e-4, "lr_schedule": "drop",
             "warmup_steps": 100, "eval_scale": 1.0, "workers": 8, "log_every": 20, "jobs": 1, "threads": 2,
             "precision": "bf16"},
}


class Stopped(Exception):
    """A stop signal: forwarded to the running stage, which saved its work; the study exits 3."""


class StudyError(Exception):
    pass


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.study", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--train-videos", default=str(DATA / "davis2016-train" / "videos"),
                   help="folder of training videos (any layout data_manifest reads); never scored")
    p.add_argument("--davis", default=str(DATA / "davis2016-val"), help="DAVIS-2016 root that is scored")
    p.add_argument("--scored", default="all", help="comma list of scored sequences, or all (ImageSets/2016/val.txt)")
    p.add_argument("--modes", default="superpixels,patches,random-cells", help=f"comma list of {','.join(MODES)}")
    p.add_argument("--device", default="cpu", choices=sorted(RECIPES))
    p.add_argument("--work", default="work/study")
    p.add_argument("--budget", type=float, help="training seconds per mode (cpu: process CPU s; cuda: device-busy s)")
    p.add_argument("--mode-budget", default="", metavar="MODE=S,...", help="a shorter budget for some modes (e.g. "
                   "random-cells=600): they keep the snapshots of --points up to S, compared where both have one")
    p.add_argument("--points", type=int, help="log-spaced snapshots of --budget scored per mode (plus step 0)")
    p.add_argument("--img-size", type=int)
    p.add_argument("--batch", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--lr-schedule", choices=LR_SCHEDULES, help="train --lr-schedule (cosine: to 0 over the mode's "
                   "budget; drop: CRW's, whose drop at 80%% of --steps never falls inside a budget)")
    p.add_argument("--warmup-steps", type=int)
    p.add_argument("--precision", choices=PRECISIONS, help="train --precision (bf16: the encoder's forward under "
                   "bf16 autocast, also on CPU)")
    p.add_argument("--eval-scale", type=float, help="scored frames and masks resized by this factor (1: 480p)")
    p.add_argument("--workers", type=int, help="loader workers (cpu: 0, so the loader's CPU counts in the budget)")
    p.add_argument("--log-every", type=int)
    p.add_argument("--preset", default="thesis", help="train --preset; only --nodes differs between modes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="torch threads of each training and evaluation process")
    p.add_argument("--jobs", type=int, help="modes trained and scored at once (each its own process)")
    p.add_argument("--report-only", action="store_true", help="train and score nothing: write the outputs from "
                   "the snapshots already scored under --work (a study cut short)")
    p.add_argument("--recipe-args", choices=sorted(RECIPES), help="only print the recipe's train options for "
                   "this device (make demo trains with them)")
    p.add_argument("--verdict", metavar="EVAL_ROOT", help="only print, for every scored model under EVAL_ROOT "
                   "(make eval-davis folders), whether it beats the step-0 (else random-init) line there")
    a = p.parse_args(argv)
    for k, v in RECIPES[a.device].items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    return a


def check(a) -> list[str]:
    """The scored sequences; StudyError for unusable options or inputs, before any work."""
    modes = a.modes.split(",")
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise StudyError(f"--modes {a.modes}: unknown {bad}; choose among {','.join(MODES)}")
    if (a.points < 1 or a.budget <= 0 or not 0 < a.eval_scale <= 1 or a.batch < 1 or a.lr <= 0
            or a.warmup_steps < 0 or a.jobs < 1 or a.threads < 1):
        raise StudyError("--points >= 1, --budget > 0, --eval-scale in (0, 1], --batch >= 1, --lr > 0, "
                         "--warmup-steps >= 0, --jobs >= 1 and --threads >= 1 are required")
    videos = Path(a.train_videos)
    if not videos.is_dir() or not any(videos.iterdir()):
        raise StudyError(f"--train-videos {videos}: no such folder, or empty")
    jpeg = Path(a.davis) / "JPEGImages" / "480p"
    if not jpeg.is_dir():
        raise StudyError(f"--davis {a.davis}: no JPEGImages/480p folder")
    have = sorted(d.name for d in jpeg.iterdir() if d.is_dir())
    listing = Path(a.davis) / "ImageSets" / "2016" / "val.txt"
    if a.scored == "all":
        scored = listing.read_text().split() if listing.is_file() else have
    else:
        scored = [s for s in a.scored.split(",") if s]
    unknown = [s for s in scored if s not in have]
    if unknown or not scored:
        raise StudyError(f"--scored: unknown sequences {unknown or '(none given)'} in {jpeg}")
    overlap = sorted({p.stem for p in videos.rglob("*") if p.is_file() or p.is_dir()} & set(scored))
    if overlap:
        raise StudyError(f"--train-videos {videos} holds scored sequences {overlap}: train on video never scored")
    a.mode_list, a.scored_list = [m for m in MODES if m in modes], scored
    a.budgets = mode_budgets(a)
    return scored


def mode_budgets(a) -> dict[str, float]:
    out = {m: a.budget for m in a.mode_list}
    for item in (x for x in a.mode_budget.split(",") if x):
        mode, _, sec = item.partition("=")
        try:
            value = float(sec)
        except ValueError:
            value = -1.0
        if mode not in out or not 0 < value <= a.budget:
            raise StudyError(f"--mode-budget {item}: expected MODE=S for a mode of --modes, 0 < S <= --budget")
        out[mode] = value
    return out


def stage(args: list[str], what: str) -> None:
    r = children.run([sys.executable, "-m", *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                     text=True)  # a stop signal reaches the stage, which checkpoints; then the study stops
    if r.signal:
        raise Stopped(f"stopped by signal {r.signal} during {what} (its exit {r.returncode}); rerun to continue")
    if r.returncode != 0:
        tail = (r.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise StudyError(f"{what} failed (exit {r.returncode}): {tail}")


def build_store(a, work: Path) -> Path:
    """Manifest of --train-videos and the label maps the modes need (preprocess keeps finished shards)."""
    store, manifest = work / "store", work / "manifest.jsonl"
    if not manifest.exists():
        stage(["data_manifest", "build", "--videos", a.train_videos, "--shard-size", "4", "--out", str(manifest)],
              "data_manifest build")
    for alg in sorted({LABEL_ALGS[m] for m in a.mode_list if m in LABEL_ALGS} or {"slic"}):
        stage(["preprocess", "--manifest", str(manifest), "--store", str(store), "--alg", alg, "--n-segments", "30",
               "--compactness", "30", "--jobs", "2"], f"preprocess --alg {alg}")
    return store


def scored_set(a, work: Path) -> Path:
    """The scored sequences as a DAVIS-2016 root, resized by --eval-scale (masks nearest-neighbour)."""
    if a.eval_scale == 1:
        return Path(a.davis)
    import cv2
    root = work / f"scored-x{a.eval_scale:g}"
    listing = root / "ImageSets" / "2016" / "val.txt"
    if listing.exists() and listing.read_text().split() == a.scored_list:
        return root
    for s in a.scored_list:
        for kind, ext, interp in (("JPEGImages", ".jpg", cv2.INTER_AREA), ("Annotations", ".png", cv2.INTER_NEAREST)):
            out = root / kind / "480p" / s
            out.mkdir(parents=True, exist_ok=True)
            for f in sorted((Path(a.davis) / kind / "480p" / s).glob("*" + ext)):
                im = cv2.imread(str(f), cv2.IMREAD_UNCHANGED)
                h, w = im.shape[:2]
                cv2.imwrite(str(out / f.name), cv2.resize(im, (round(w * a.eval_scale), round(h * a.eval_scale)),
                                                          interpolation=interp))
    listing.parent.mkdir(parents=True, exist_ok=True)
    listing.write_text("\n".join(a.scored_list) + "\n")
    return root


def marks(a, budget: float | None = None) -> list[float]:
    """--points log-spaced seconds ending at --budget, each twice the one before; a shorter budget keeps those
    below it and ends at itself."""
    full = [round(a.budget / 2 ** (a.points - 1 - i), 1) for i in range(a.points)]
    if budget is None or budget >= a.budget:
        return full
    return [m for m in full if m < budget] + [budget]


def train(a, store: Path, mode: str, work: Path, extra_steps: list[int]) -> Path:
    run = work / "runs" / mode
    steps = ",".join(str(s) for s in [0, *extra_steps])
    stage(["train", "--store", str(store), "--preset", a.preset, *NODE_ARGS[mode], "--img-size", str(a.img_size),
           "--batch", str(a.batch), "--lr", str(a.lr), "--lr-schedule", a.lr_schedule,
           "--warmup-steps", str(a.warmup_steps), "--seed", str(a.seed),
           "--steps", "100000000", "--budget", str(a.budgets[mode]), "--clock", "cpu" if a.device == "cpu" else "device",
           "--snapshot-at", ",".join(f"{m:g}" for m in marks(a, a.budgets[mode])), "--snapshot-steps", steps,
           "--workers", str(a.workers), "--threads", str(a.threads), "--device", a.device, "--precision", a.precision,
           "--log-every", str(a.log_every), "--ckpt-every", "100000000", "--run", str(run)], f"training {mode}")
    return run


def encoder_hash(ckpt: dict) -> str:
    h = hashlib.sha1()
    for k, v in sorted(ckpt["model"].items()):
        if k.startswith("encoder."):
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


_EVAL_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_LOCK = threading.Lock()


def score(a, scored: Path, work: Path, name: str, features: list[str]) -> dict:
    """metrics-val.json of `evaluate davis` + `evaluate metrics` into WORK/eval/<name> (reused when there)."""
    with _LOCKS_LOCK:  # modes trained at once share step 0: one evaluation of it, the other waits and reuses
        lock = _EVAL_LOCKS.setdefault(name, threading.Lock())
    with lock:
        return _score(a, scored, work, name, features)


def _score(a, scored: Path, work: Path, name: str, features: list[str]) -> dict:
    out = work / "eval" / name
    metrics = out / "metrics-val.json"
    if not metrics.exists():
        stage(["evaluate", "davis", "--davis", str(scored), "--year", "2016", "--set", "val", *features, "--out",
               str(out), "--no-overlays", "--threads", str(a.threads), "--device", a.device], f"evaluating {name}")
        stage(["evaluate", "metrics", "--davis", str(scored), "--year", "2016", "--set", "val", "--results", str(out),
               "--jobs", "2"], f"scoring {name}")
    res = json.loads(metrics.read_text())
    if not res.get("complete"):
        raise StudyError(f"{metrics}: not every sequence scored ({res.get('failures')})")
    return res


def row_of(a, res: dict, method: str, nodes: str, point: str, ckpt: dict | None, path: str) -> dict:
    g, clock = res["global"], "cpu" if a.device == "cpu" else "device"
    r = {"method": method, "nodes": nodes, "point": point, "clock": clock, "checkpoint": path,
         "per_seq": report.per_sequence(res), **{k: round(g[k], 4) for k in ("J&F-Mean", "J-Mean", "F-Mean")}}
    ck = ckpt or {}
    steps = ck.get("step", 0)
    r.update(steps=steps, clips_seen=steps * a.batch, cpu_seconds=round(ck.get("train_cpu_seconds", 0.0), 1),
             wall_seconds=round(ck.get("train_seconds", 0.0), 1),
             device_seconds=round(ck.get("train_device_seconds", 0.0), 2))
    r["seconds"] = r["cpu_seconds"] if clock == "cpu" else r["device_seconds"]
    return r


def snapshot_rows(a, scored: Path, work: Path, mode: str, run: Path) -> list[dict]:
    import torch
    rows, kind = [], "cpu" if a.device == "cpu" else "device"
    for snap in sorted(run.glob("snapshot-*.pt")):
        tag = snap.stem[len("snapshot-"):]
        if tag == "step0":
            point = "step0"
        elif tag.startswith("step"):
            point = f"clips-{int(tag[4:]) * a.batch}"
        elif tag.startswith(kind):
            point = f"t{tag[len(kind):]}"
        else:
            continue
        ck = torch.load(snap, map_location="cpu", weights_only=False)
        name = f"w-{encoder_hash(ck)}"
        if a.report_only and not (work / "eval" / name / "metrics-val.json").exists():
            print(f"[study] {snap}: not scored yet, left out (--report-only)", flush=True)
            continue
        res = score(a, scored, work, name, ["--ckpt", str(snap)])
        rows.append(row_of(a, res, report.LABELS[mode], mode, point, ck, str(snap)))
    return rows


def final_steps(a, run: Path) -> list[int]:
    """Steps of the patch run's snapshot at --budget, for superpixels' equal-clips snapshot."""
    import torch
    kind = "cpu" if a.device == "cpu" else "device"
    snap = run / f"snapshot-{kind}{marks(a, a.budgets.get('patches', a.budget))[-1]:g}.pt"
    return [torch.load(snap, map_location="cpu", weights_only=False)["step"]] if snap.exists() else []


def run_study(a, work: Path) -> str:
    store = work / "store" if a.report_only else build_store(a, work)
    scored = scored_set(a, work)
    print(f"[study] {len(a.scored_list)} scored sequences; modes {','.join(a.mode_list)}; budget {a.budget:g} s "
          f"({a.device}) at {marks(a)}; {a.jobs} at once", flush=True)
    rgb = row_of(a, score(a, scored, work, "rgb", ["--features", "rgb"]), "raw RGB features", "-", "-", None, "-")
    recipe = (f"preset {a.preset}, {a.img_size} px, batch {a.batch}, lr {a.lr:g} ({a.lr_schedule}), "
              f"warm-up {a.warmup_steps} steps, {a.precision}, {a.budget:g} {'CPU' if a.device == 'cpu' else 'device'} "
              f"s per mode, scored at x{a.eval_scale:g}")
    done, text = {}, ""
    patches_trained = threading.Event()
    if "patches" not in a.mode_list:
        patches_trained.set()
    order = sorted(a.mode_list, key=lambda m: (m != "patches", m == "superpixels"))
    with ThreadPoolExecutor(a.jobs) as pool:
        futures = {pool.submit(train_and_score, a, store, scored, work, m, patches_trained): m for m in order}
        for f in as_completed(futures):
            done[futures[f]] = f.result()
            rows = [r for m in a.mode_list if m in done for r in done[m]]
            if rows:  # after each mode: partial results
                text = report.write_all(work, rows, [rgb], rows[0]["clock"], recipe)
    return text


def train_and_score(a, store: Path, scored: Path, work: Path, mode: str, patches_trained: threading.Event) -> list:
    """One mode's training and its scored snapshots; superpixels wait for the patches' final step (equal clips)."""
    t0 = time.time()
    if mode == "superpixels":
        patches_trained.wait()
    try:
        extra = final_steps(a, work / "runs" / "patches") if mode == "superpixels" else []
        run = work / "runs" / mode if a.report_only else train(a, store, mode, work, extra)
    finally:
        if mode == "patches":
            patches_trained.set()
    rows = snapshot_rows(a, scored, work, mode, run) if run.is_dir() else []
    print(f"[study] {mode}: trained and scored in {time.time() - t0:.0f} s", flush=True)
    return rows


def verdict(root: Path) -> int:
    """One plain line per trained model: J&F against step 0 (else the random-init encoder) on the same set."""
    def jf(d):
        m = d / "metrics-val.json"
        return json.loads(m.read_text())["global"]["J&F-Mean"] if m.exists() else None
    base = "step0" if jf(root / "step0") is not None else "random"
    ref = jf(root / base)
    if ref is None:
        print(f"[study] {root}: no step-0 or random-init evaluation (step0/ or random/metrics-val.json)",
              file=sys.stderr)
        return 2
    what = "its own step 0" if base == "step0" else "the random-init encoder"
    for d in sorted(p for p in root.iterdir() if p.is_dir() and p.name not in ("random", "rgb", "step0")):
        v = jf(d)
        if v is not None:
            print(f"{d.name}: J&F {v:.3f} {'beats' if v > ref else 'does NOT beat'} {what} ({ref:.3f}) on {root.name}")
    return 0


def recipe_args(device: str) -> str:
    r = RECIPES[device]
    nums = " ".join(f"--{k.replace('_', '-')} {r[k]:g}" for k in ("img_size", "batch", "lr", "warmup_steps", "workers",
                                                                   "log_every"))
    return f"{nums} --lr-schedule {r['lr_schedule']} --precision {r['precision']}"


def main(argv=None) -> int:
    a = parse_args(argv)
    if a.recipe_args:
        print(recipe_args(a.recipe_args))
        return 0
    if a.verdict:
        return verdict(Path(a.verdict))
    t0, work = time.time(), Path(a.work)
    try:
        check(a)
    except StudyError as e:
        print(f"[study] error: {e}", file=sys.stderr)
        return 2
    try:
        work.mkdir(parents=True, exist_ok=True)
        with children.forwarding():
            text = run_study(a, work)
    except Stopped as e:
        print(f"[study] {e}", file=sys.stderr)
        return 3
    except StudyError as e:
        print(f"[study] error: {e}", file=sys.stderr)
        return 1
    print(text)
    print(f"[study] wrote {work}/study.csv, study.md, study.png in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
