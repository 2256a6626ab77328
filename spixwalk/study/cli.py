"""`spixwalk study`: every arm x grid cell x seed trained for the same FLOPs, scored, compared, resumable.

Trains through the real stages on video that is never scored (--train-videos) and scores every snapshot on
DAVIS-2016 (--davis; J&F) and, with --keypoints, on BADJA (PCK). Rerunning the same command goes on where a
stopped or cut-short study ended: finished runs and scores are kept, a trainer resumes from its checkpoint.
"""
from __future__ import annotations

import argparse
import csv
import io
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from spixwalk import children
from spixwalk.train import recipes

from . import plan, report, runner
from .runner import Stopped, StudyError

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"  # a checkout beside ../shared
EXIT_STOPPED = 3


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="spixwalk study", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--train-videos", default=str(DATA / "davis2016-train" / "videos"),
                   help="folder of training videos (never scored)")
    p.add_argument("--store", help="a store already holding the arms' label configurations (e.g. a device kit's): "
                   "train on it instead of building one from --train-videos")
    p.add_argument("--davis", default=str(DATA / "davis2016-val"), help="DAVIS-2016 root whose sequences are scored")
    p.add_argument("--scored", default="all", help="comma list of scored sequences, or all (ImageSets/2016/val.txt)")
    p.add_argument("--keypoints", default=None, help="BADJA joint_annotations folder: also score PCK (default: "
                   "../shared/data/badja/joint_annotations where present; 'none': J&F only)")
    p.add_argument("--arms", default=",".join(recipes.PRIMARY + ("grid-cells",)),
                   help=f"comma list of {','.join(recipes.ARMS)}")
    p.add_argument("--cells", default="frozen", help=f"grid cells per arm: frozen (each arm's chosen recipe), tune "
                   f"({','.join(recipes.TUNING_CELLS)}), all, or a comma list of {','.join(recipes.GRID)}")
    p.add_argument("--seeds", default="10,11,12,13,14", help="comma list; seed k gives every arm the same initial "
                   f"weights and clip order (tuning seeds: {','.join(map(str, recipes.TUNING_SEEDS))})")
    p.add_argument("--budget-flops", type=float, default=1.2e14, help="training FLOPs per run (forward + backward)")
    p.add_argument("--points", type=int, default=1, help="scored budgets per run, each twice the one before "
                   "and the last the budget (plus step 0); the protocol scores 1 (docs/study-protocol.md)")
    p.add_argument("--eval-scale", type=float, default=0.5, help="DAVIS frames and masks scored at this scale")
    p.add_argument("--img-size", type=int, help="override every arm's crop size (smoke tests, demos; default: the "
                   "recipe's)")
    p.add_argument("--batch", type=int, help="override every arm's clips per step (default: the recipe's)")
    p.add_argument("--jobs", type=int, default=2, help="runs trained and scored at once, each its own process")
    p.add_argument("--threads", type=int, default=1, help="torch threads of each training and scoring process")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where runs train and score")
    p.add_argument("--work", default="work/study", help="the study's folder (store, runs, scores, outputs)")
    p.add_argument("--report-only", action="store_true", help="train and score nothing; write the outputs from "
                   "what is scored under --work")
    p.add_argument("--verdict", metavar="EVAL_ROOT", help="only print, for every model scored under EVAL_ROOT "
                   "(make eval-davis folders), whether it beats the step-0 (else random-init) line there")
    p.add_argument("--choose", action="store_true", help="print each arm's mean J&F per grid cell at the final "
                   "budget over the scored seeds, and the cell to freeze (tuning)")
    return p.parse_args(argv)


def check(a) -> None:
    """Options and inputs, before any work (StudyError: exit 2)."""
    a.arm_list = [x for x in a.arms.split(",") if x]
    named = {"all": list(recipes.GRID), "tune": list(recipes.TUNING_CELLS)}
    a.cell_list = named.get(a.cells) or [x for x in a.cells.split(",") if x]
    bad = [x for x in a.arm_list if x not in recipes.ARMS] + [
        x for x in a.cell_list if x not in recipes.GRID and x != "frozen"]
    if bad or not a.arm_list or not a.cell_list:
        raise StudyError(f"--arms/--cells: unknown {bad or '(none given)'}; arms {','.join(recipes.ARMS)}, "
                         f"cells frozen,all,{','.join(recipes.GRID)}")
    try:
        a.seed_list = [int(s) for s in a.seeds.split(",") if s.strip()]
    except ValueError:
        raise StudyError(f"--seeds {a.seeds!r}: not a comma list of integers") from None
    if not a.seed_list or a.budget_flops <= 0 or a.points < 1 or not 0 < a.eval_scale <= 1 or a.jobs < 1 or a.threads < 1:
        raise StudyError("--seeds non-empty, --budget-flops > 0, --points >= 1, --eval-scale in (0, 1], --jobs >= 1 "
                         "and --threads >= 1 are required")
    a.work = Path(a.work)
    a.scored_list = scored_sequences(a)
    if a.keypoints is None:
        default = DATA / "badja" / "joint_annotations"
        a.keypoints = str(default) if default.is_dir() else None
    elif a.keypoints == "none":
        a.keypoints = None
    elif not Path(a.keypoints).is_dir():
        raise StudyError(f"--keypoints {a.keypoints}: no such folder")


def scored_sequences(a) -> list[str]:
    from spixwalk.evaluate.davis_io import InputError, sequence_list

    if not (Path(a.davis) / "JPEGImages" / "480p").is_dir():
        raise StudyError(f"--davis {a.davis}: no JPEGImages/480p folder")
    try:
        scored = sequence_list(a.davis, 2016, "val", None if a.scored == "all" else [s for s in a.scored.split(",") if s])
    except InputError as e:
        raise StudyError(f"--scored {a.scored}: {e}") from None
    if a.report_only or a.choose:
        return scored
    if a.store:
        if not Path(a.store).is_dir():
            raise StudyError(f"--store {a.store}: no such folder")
        return scored
    videos = Path(a.train_videos)
    if not videos.is_dir() or not any(videos.iterdir()):
        raise StudyError(f"--train-videos {videos}: no such folder, or empty")
    overlap = sorted({p.stem for p in videos.rglob("*")} & set(scored))
    if overlap:
        raise StudyError(f"--train-videos {videos} holds scored sequences {overlap}: train on video never scored")
    return scored


def pck_table(text: str | None) -> tuple[dict, float | str]:
    """({sequence: PCK}, overall PCK) from `evaluate keypoints`' pck.csv ('' where none)."""
    if not text:
        return {}, ""
    rows = list(csv.DictReader(io.StringIO(text)))
    col = next((c for c in rows[0] if c.lower().startswith("pck")), None) if rows else None
    if col is None:
        return {}, ""
    per = {r["sequence"]: float(r[col]) for r in rows if r["sequence"] not in ("all", "overall", "mean", "global")}
    overall = next((float(r[col]) for r in rows if r["sequence"] in ("all", "overall", "mean", "global")), "")
    return per, overall


def scored(a, key: str) -> bool:
    """Has the encoder (or baseline) `key` been scored under WORK/eval already?"""
    return runner.metrics_path(a.work, key).exists()


def snapshot_row(a, run: plan.Run, point: str, snap: Path, budget: float, flops_per_step: int) -> dict | None:
    """One scored snapshot as a study.csv row (plus its per-sequence scores)."""
    import torch
    ck = torch.load(snap, map_location="cpu", weights_only=False)
    key = f"w-{runner.encoder_hash(ck)}-x{a.eval_scale:g}"
    if (a.report_only or a.choose) and not scored(a, key):
        print(f"[study] {snap}: not scored yet, left out", flush=True)
        return None
    figures = _figures(runner.score(a, snap, key))
    cfg = ck.get("config", {})
    steps = ck.get("step", 0)
    cpu = float(ck.get("train_cpu_seconds", 0.0))
    return {"arm": run.arm, "cell": run.cell, "seed": run.seed, "point": point, "budget_flops": budget,
            "flops": steps * flops_per_step, "steps": steps, "clips_seen": steps * cfg.get("batch", 0),
            "seconds": round(cpu, 1), "loader_wait": loader_fraction(snap.parent, steps), "device": a.machine,
            "precision": "bf16" if cfg.get("precision") == "bf16" or (
                cfg.get("precision") == "auto" and "cuda" in str(cfg.get("device"))) else "fp32",
            "threads": cfg.get("threads", a.threads), "torch": cfg.get("torch", torch.__version__),
            **figures, "checkpoint": str(snap)}


def _figures(res: dict) -> dict:
    """A scoring's J&F, J, F, PCK and their per-sequence scores."""
    g = res["davis"]["global"]
    pck_seq, pck = pck_table(res["pck"])
    return {**{k: round(g[k], 4) for k in ("J&F-Mean", "J-Mean", "F-Mean")}, "PCK": pck,
            "per_seq": report.per_sequence(res["davis"]), "pck_seq": pck_seq}


def reference(a) -> dict | None:
    """Raw RGB features (no training) scored on the same sequences: what an encoder must beat to have learned
    more than colour. Cheap (3 channels); None where --report-only finds it unscored."""
    key = f"rgb-x{a.eval_scale:g}"
    if a.report_only and not scored(a, key):
        return None
    return _figures(runner.score(a, Path("rgb"), key))


def one_run(a, store: Path, run: plan.Run) -> list[dict]:
    """Train one run (or find it trained) and score its snapshots."""
    fps = plan.step_flops(a.work, run.arm, 25, a.img_size, a.batch)
    budgets = plan.marks(a.budget_flops, a.points)
    steps = plan.steps_at(budgets, fps)
    trained = a.report_only or a.choose
    out = runner.run_dir(a.work, run) if trained else runner.train(a, store, run, steps)
    rows = []
    for point, budget, step in [("step0", 0.0, 0)] + [(f"p{i + 1}", b, s) for i, (b, s) in enumerate(zip(budgets, steps))]:
        snap = out / f"snapshot-step{step}.pt"
        row = snapshot_row(a, run, point, snap, budget, fps) if snap.exists() else None
        if row:
            rows.append(row)
    print(f"[study] {run.name}: {steps[-1]} steps of {fps / 1e9:,.0f} GFLOPs, {len(rows)} snapshot(s) scored",
          flush=True)
    return rows


def loader_fraction(run_dir: Path, step: int) -> float | str:
    """Mean share of wall time the trainer waited for its batches (the loader's cost, --workers 0) up to `step`."""
    import json
    log = run_dir / "log.jsonl"
    if not log.exists():
        return ""
    rows = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
    waits = [r["next_wait"] for r in rows if r.get("step", 0) <= step and "next_wait" in r]
    return round(sum(waits) / len(waits), 4) if waits else ""


def choose(rows: list[dict]) -> str:
    """Each arm's mean final J&F per grid cell over its seeds, and the best cell (ties: the first in GRID)."""
    final = max((r["point"] for r in rows if r["point"] != "step0"), default=None)
    lines = []
    for arm in dict.fromkeys(r["arm"] for r in rows):
        means = {}
        for cell in recipes.GRID:
            v = [r["J&F-Mean"] for r in rows if r["arm"] == arm and r["cell"] == cell and r["point"] == final]
            if v:
                means[cell] = (sum(v) / len(v), len(v))
        if means:
            best = max(means, key=lambda c: means[c][0])
            cells = ", ".join(f"{c} {m:.4f} ({n} seeds)" for c, (m, n) in means.items())
            lines.append(f"{arm}: {cells} -> {best}")
    return "\n".join(lines) or "(no scored run at a final budget)"


def study(a) -> str:
    a.work.mkdir(parents=True, exist_ok=True)
    a.machine = plan.machine()
    if a.store or a.report_only or a.choose:
        store = Path(a.store) if a.store else a.work / "store"
    else:
        store = runner.build_store(a.train_videos, a.work, a.arm_list)
    todo = plan.runs(a.arm_list, a.cell_list, a.seed_list)
    print(f"[study] {len(todo)} runs ({','.join(a.arm_list)} x {','.join(a.cell_list)} x seeds {a.seeds}), "
          f"{a.budget_flops:.3g} training FLOPs each, {len(a.scored_list)} scored sequences, {a.jobs} at once",
          flush=True)
    rows: list[dict] = []
    with ThreadPoolExecutor(a.jobs) as pool:
        futures = [pool.submit(one_run, a, store, r) for r in todo]
        for f in as_completed(futures):
            rows += f.result()
    order = {r: i for i, r in enumerate(todo)}
    rows.sort(key=lambda r: (order[plan.Run(r["arm"], r["cell"], r["seed"])], r["point"]))
    if a.choose:
        return choose(rows)
    return report.write_all(a.work, rows, f"p{a.points}", a.budget_flops, header(a), reference(a), len(a.seed_list))


def header(a) -> str:
    """What study.md says was run; 'frozen' cells read before the tuning chose them are called provisional."""
    cells = ", ".join(a.cell_list)
    if "frozen" in a.cell_list:
        state = f"chosen {recipes.FROZEN_ON}" if recipes.FROZEN_ON else "PROVISIONAL, not yet chosen by the tuning"
        cells += f" ({', '.join(f'{arm} {recipes.FROZEN[arm]}' for arm in a.arm_list)}; {state})"
    return (f"Arms {', '.join(a.arm_list)}; cells {cells}; seeds {a.seeds}; {a.budget_flops:.3g} training FLOPs per "
            f"run, scored at {a.points} budget(s) and step 0 on {len(a.scored_list)} DAVIS-2016 sequences at "
            f"x{a.eval_scale:g}; trained on {a.machine}.")


def verdict(root: Path) -> int:
    """One plain line per trained model: J&F against step 0 (else the random-init encoder) on the same set."""
    import json

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


def main(argv=None) -> int:
    a = parse_args(argv)
    if a.verdict:
        return verdict(Path(a.verdict))
    t0 = time.time()
    try:
        check(a)
    except StudyError as e:
        print(f"[study] error: {e}", file=sys.stderr)
        return 2
    try:
        with children.forwarding():
            text = study(a)
    except Stopped:
        print("[study] stopped by a signal: every child saved its checkpoint; rerun the same command to go on",
              file=sys.stderr)
        return EXIT_STOPPED
    except StudyError as e:
        print(f"[study] error: {e}", file=sys.stderr)
        return 1
    print(text)
    if not a.choose:  # --choose only prints
        print(f"[study] wrote {a.work}/study.csv, study_comparisons.csv, study.md in {time.time() - t0:.0f} s")
    return 0
