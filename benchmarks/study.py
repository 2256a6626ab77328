"""Learning-signal study: J&F vs training CPU seconds for patch, superpixel and mixed nodes (`make study`).

DAVIS-2016 sequences serve twice, never both ways: the `--scored` ones are the evaluation set, every
other sequence of `--davis` is unlabeled training video (JPEG folders -> data_manifest -> preprocess,
SLIC-30). Each node mode trains with `--preset crw` (only --nodes differs) until the training process
has used `--cpu-budget` CPU seconds, keeping a checkpoint copy at `--points` equal steps of that budget;
each copy, a random-init encoder and raw RGB are scored by label propagation + J&F. CPU time, not wall
time, is the budget: on a shared machine wall time measures the neighbours. Scored frames are resized
by `--eval-scale` (0.5: 427x240) to keep the many evaluations affordable; every method sees the same set.
Writes WORK/study.csv, study.png, study.md. Reruns reuse finished trainings and scores.
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see spixwalk/__init__.py

import argparse  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SCORED = "car-shadow,motocross-jump,scooter-black,blackswan,drift-straight,horsejump-high"
MODES = ("patches", "superpixels", "mixed")
LABELS = {"patches": "patch nodes", "superpixels": "superpixel nodes", "mixed": "mixed (p=0.7 patches)"}
COLUMNS = ["method", "nodes", "cpu_seconds", "wall_seconds", "steps", "J&F-Mean", "J-Mean", "F-Mean"]


class StudyError(Exception):
    pass


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.study", description=__doc__.split("\n")[0])
    p.add_argument("--davis", default=str(REPO.parent / "shared" / "data" / "davis2016-val"),
                   help="DAVIS-2016 root (JPEGImages/480p, Annotations/480p)")
    p.add_argument("--scored", default=SCORED, help="comma list of scored sequences (never trained on)")
    p.add_argument("--work", default="work/study")
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--img-size", type=int, default=256)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--cpu-budget", type=float, default=200, help="training CPU seconds per node mode")
    p.add_argument("--points", type=int, default=2, help="checkpoints scored per mode, at equal CPU steps")
    p.add_argument("--eval-scale", type=float, default=0.5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--verdict", metavar="EVAL_ROOT", help="only print, for every scored model under EVAL_ROOT "
                   "(make eval-davis folders), whether it beats the random-init line there")
    a = p.parse_args(argv)
    a.modes = a.modes.split(",")
    a.scored = a.scored.split(",")
    return a


def check(a) -> list[str]:
    """The training sequences; StudyError for unusable options, before any work."""
    jpeg = Path(a.davis) / "JPEGImages" / "480p"
    if not jpeg.is_dir():
        raise StudyError(f"--davis {a.davis}: no JPEGImages/480p folder")
    seqs = sorted(d.name for d in jpeg.iterdir() if d.is_dir())
    unknown = [s for s in a.scored if s not in seqs]
    bad_modes = [m for m in a.modes if m not in MODES]
    if unknown or bad_modes or a.points < 1 or a.cpu_budget <= 0 or not 0 < a.eval_scale <= 1:
        raise StudyError(f"unknown --scored {unknown} or --modes {bad_modes}, or --points < 1, --cpu-budget <= 0, "
                         f"--eval-scale outside (0, 1]")
    train = [s for s in seqs if s not in a.scored]
    if not train:
        raise StudyError("no sequence left to train on: --scored lists them all")
    return train


def run_python(cmd: list[str], what: str) -> None:
    r = subprocess.run([sys.executable, *cmd], cwd=REPO, capture_output=True, text=True)
    if r.returncode != 0:
        raise StudyError(f"{what} failed (exit {r.returncode}): {r.stderr.strip().splitlines()[-1:]}")


def build_store(a, train: list[str], work: Path) -> Path:
    store, videos = work / "store", work / "videos"
    if (work / "store.done").exists():
        return store
    videos.mkdir(parents=True, exist_ok=True)
    for s in train:
        link = videos / s
        if not link.exists():
            link.symlink_to((Path(a.davis) / "JPEGImages" / "480p" / s).resolve())
    run_python(["-m", "data_manifest", "build", "--videos", str(videos), "--frames-fps", "24", "--shard-size", "4",
         "--out", str(work / "manifest.jsonl"), "--fresh"], "data_manifest build")
    run_python(["-m", "preprocess", "--manifest", str(work / "manifest.jsonl"), "--store", str(store), "--alg", "slic",
         "--n-segments", "30", "--compactness", "30", "--jobs", "2"], "preprocess")
    (work / "store.done").write_text("ok\n")
    return store


def scored_set(a, work: Path) -> Path:
    """The scored sequences, frames and masks resized by --eval-scale (masks nearest-neighbour)."""
    import cv2
    root = work / f"scored-x{a.eval_scale:g}"
    if (root / "ImageSets" / "2016" / "val.txt").exists():
        return root
    for s in a.scored:
        for kind, ext, interp in (("JPEGImages", ".jpg", cv2.INTER_AREA), ("Annotations", ".png", cv2.INTER_NEAREST)):
            out = root / kind / "480p" / s
            out.mkdir(parents=True, exist_ok=True)
            for f in sorted((Path(a.davis) / kind / "480p" / s).glob("*" + ext)):
                im = cv2.imread(str(f), cv2.IMREAD_UNCHANGED)
                h, w = im.shape[:2]
                size = (int(round(w * a.eval_scale)), int(round(h * a.eval_scale)))
                cv2.imwrite(str(out / f.name), cv2.resize(im, size, interpolation=interp))
    (root / "ImageSets" / "2016").mkdir(parents=True, exist_ok=True)
    (root / "ImageSets" / "2016" / "val.txt").write_text("\n".join(a.scored) + "\n")
    return root


def train(a, store: Path, mode: str, work: Path) -> Path:
    marks = [round(a.cpu_budget * (i + 1) / a.points) for i in range(a.points)]
    rundir = work / "runs" / mode
    run_python(["-m", "train", "--store", str(store), "--preset", "crw", "--nodes", mode, "--img-size", str(a.img_size),
         "--batch", str(a.batch), "--lr", str(a.lr), "--steps", "1000000", "--workers", "0",
         "--threads", str(a.threads), "--log-every", "1", "--ckpt-every", "1000000",
         "--cpu-budget", str(a.cpu_budget), "--snapshot-cpu", ",".join(map(str, marks)), "--run", str(rundir)],
        f"training {mode}")
    return rundir


def score(a, scored: Path, work: Path, name: str, features: list[str]) -> dict:
    out = work / "eval" / name
    metrics = out / "metrics-val.json"
    if not metrics.exists():
        run_python(["-m", "evaluate", "davis", "--davis", str(scored), "--year", "2016", "--set", "val", *features,
             "--out", str(out), "--no-overlays", "--threads", str(a.threads)], f"evaluating {name}")
        run_python(["-m", "evaluate", "metrics", "--davis", str(scored), "--year", "2016", "--set", "val",
             "--results", str(out)], f"scoring {name}")
    g = json.loads(metrics.read_text())["global"]
    return {k: round(g[k], 4) for k in ("J&F-Mean", "J-Mean", "F-Mean")}


def snapshot_rows(a, scored: Path, work: Path, mode: str, rundir: Path) -> list[dict]:
    import torch
    rows = []
    for snap in sorted(rundir.glob("snapshot-cpu*.pt"), key=lambda p: int(p.stem[len("snapshot-cpu"):])):
        ck = torch.load(snap, map_location="cpu", weights_only=False)
        res = score(a, scored, work, f"{mode}-{snap.stem}", ["--ckpt", str(snap)])
        rows.append({"method": LABELS[mode], "nodes": mode, "cpu_seconds": round(ck["train_cpu_seconds"], 1),
                     "wall_seconds": round(ck["train_seconds"], 1), "steps": ck["step"], **res})
    return rows


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for mode in MODES:
        pts = [r for r in rows if r["nodes"] == mode]
        if pts:
            ax.plot([r["cpu_seconds"] for r in pts], [r["J&F-Mean"] for r in pts], marker="o", label=LABELS[mode])
    for r, style in zip(rows[:2], (":", "--")):
        ax.axhline(r["J&F-Mean"], color="grey", ls=style, label=r["method"])
    ax.set(xlabel="training CPU seconds", ylabel="J&F-Mean (scored DAVIS-2016 sequences)",
           title="learning signal per training second")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write(rows: list[dict], work: Path, a, seconds: float) -> None:
    with open(work / "study.csv", "w", newline="") as f:
        w = csv.DictWriter(f, COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    plot(rows, work / "study.png")
    lines = ["| method | training CPU s | training wall s | steps | J&F-Mean | J-Mean | F-Mean |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['method']} | {r['cpu_seconds']} | {r['wall_seconds']} | {r['steps']} | {r['J&F-Mean']:.3f} | "
              f"{r['J-Mean']:.3f} | {r['F-Mean']:.3f} |" for r in rows]
    rnd = rows[1]["J&F-Mean"]
    for mode in a.modes:
        pts = [r for r in rows if r["nodes"] == mode]
        if pts:
            best = max(pts, key=lambda r: r["J&F-Mean"])
            lines.append(f"\n{mode}: best J&F {best['J&F-Mean']:.3f} at {best['cpu_seconds']} CPU s "
                         f"({100 * (best['J&F-Mean'] - rnd):+.1f} points vs random init)")
    lines.append(f"\nscored: {','.join(a.scored)} at x{a.eval_scale:g}; preset crw, img {a.img_size}, batch {a.batch}, "
                 f"lr {a.lr}, {a.cpu_budget:g} CPU s per mode; study took {seconds:.0f} s wall")
    (work / "study.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def verdict(root: Path) -> int:
    """One plain line per trained model: J&F against the random-init encoder on the same scored set."""
    def jf(d):
        m = d / "metrics-val.json"
        return json.loads(m.read_text())["global"]["J&F-Mean"] if m.exists() else None
    rnd = jf(root / "random")
    if rnd is None:
        print(f"[study] {root}: no random-init evaluation (random/metrics-val.json)", file=sys.stderr)
        return 2
    for d in sorted(p for p in root.iterdir() if p.is_dir() and p.name not in ("random", "rgb")):
        v = jf(d)
        if v is not None:
            word = "beats" if v > rnd else "does NOT beat"
            print(f"{d.name}: J&F {v:.3f} {word} the random-init encoder ({rnd:.3f}) on {root.name}")
    return 0


def main(argv=None) -> int:
    a = parse_args(argv)
    if a.verdict:
        return verdict(Path(a.verdict))
    t0 = time.time()
    work = Path(a.work)
    try:
        train_seqs = check(a)
        work.mkdir(parents=True, exist_ok=True)
        store = build_store(a, train_seqs, work)
        scored = scored_set(a, work)
        print(f"[study] training on {len(train_seqs)} sequences, scoring {len(a.scored)}", flush=True)
        rundirs = {m: train(a, store, m, work) for m in a.modes}
        base = {"cpu_seconds": 0, "wall_seconds": 0, "steps": 0}
        rows = [{"method": "raw RGB features", "nodes": "-", **base,
                 **score(a, scored, work, "rgb", ["--features", "rgb"])},
                {"method": "random-init encoder", "nodes": "-", **base,
                 **score(a, scored, work, "random", ["--init", "random"])}]
        for m, d in rundirs.items():
            rows += snapshot_rows(a, scored, work, m, d)
    except StudyError as e:
        print(f"[study] error: {e}", file=sys.stderr)
        return 2
    write(rows, work, a, time.time() - t0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
