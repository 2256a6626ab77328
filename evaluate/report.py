"""Tables and figures across runs: the demo's one-screen table and `make report`'s markdown.

Reads only files the stages wrote: RUN/summary.json, RUN/config.json and RUN/log.jsonl (train) and
EVAL/metrics-val.json, EVAL/<seq>/overlay/*.png and, from `evaluate davis --video`, EVAL/<seq>/side-by-side/still.png
and video.mp4 (evaluate), and EVAL/keypoints-badja/pck.csv (`make eval-keypoints`: PCK@0.2 beside J&F). The
evaluation of a run RUN lives in EVAL_ROOT/<basename of RUN>; the baselines in EVAL_ROOT/rgb and EVAL_ROOT/random.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
from pathlib import Path

BASELINES = {"rgb": "raw RGB features", "random": "random-init encoder", "step0": "step 0 (the trained models' initial weights)"}
SCORES = ("J&F-Mean", "J-Mean", "J-Recall", "F-Mean", "F-Recall")


def _json(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _log(run: Path) -> list[dict]:
    p = Path(run) / "log.jsonl"
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()] if p.exists() else []


KEYPOINTS = "keypoints-badja"  # `make eval-keypoints` writes EVAL/<name>/keypoints-badja/pck.csv
PCK = "PCK@0.2"


def _pck(eval_dir: Path) -> float | None:
    """The overall BADJA PCK@0.2 of an evaluation, None where no keypoints evaluation exists."""
    import csv

    try:
        with open(Path(eval_dir) / KEYPOINTS / "pck.csv", newline="") as f:
            rows = [r for r in csv.DictReader(f) if r.get("sequence") == "overall"]
        return float(rows[0]["pck@0.2"]) if rows else None
    except (OSError, KeyError, ValueError):
        return None


def method_rows(runs: list, eval_root) -> list[dict]:
    """One row per baseline found and per run: DAVIS scores (None where not evaluated) + training figures."""
    eval_root = Path(eval_root)
    rows = []
    for key, name in BASELINES.items():
        m = _json(eval_root / key / "metrics-val.json")
        if m:
            rows.append({"method": name, **{s: m["global"][s] for s in SCORES}, **_scored(m),
                         PCK: _pck(eval_root / key)})
        elif _pck(eval_root / key) is not None:
            rows.append({"method": name, PCK: _pck(eval_root / key)})
    for run in map(Path, runs):
        s = _json(run / "summary.json") or {}
        m = _json(eval_root / run.name / "metrics-val.json")
        row = {"method": f"{run.name} ({s.get('nodes', '?')})", "run": str(run),
               "train_s": s.get("train_seconds_total"), "clips_per_s": s.get("clips_per_s"), "batch": s.get("batch"),
               "steps": s.get("steps"), "final_loss": s.get("final_loss")}
        row.update({k: (m["global"][k] if m else None) for k in SCORES})
        row.update(_scored(m) if m else {"davis": None})
        row[PCK] = _pck(eval_root / run.name)
        rows.append(row)
    return rows


def _scored(m: dict) -> dict:
    """What a metrics JSON scored: its root, how many sequences of how many its set lists, at what scale."""
    return {"davis": m.get("davis"), "n_sequences": len(m["sequences"]) if "sequences" in m else None,
            "listed": m.get("listed"), "eval_scale": m.get("eval_scale", 1.0)}


def _sequences(r: dict) -> str:
    n, listed = r.get("n_sequences"), r.get("listed")
    return "-" if n is None else f"{n}/{listed}" if listed else str(n)


def scored_line(rows: list[dict]) -> str:
    """The set the DAVIS table was scored on, in words: 'on `davis2016-val`, 2 of its 14 val sequences'."""
    davis = next((r["davis"] for r in rows if r.get("davis")), None)
    if davis is None:
        return "not evaluated"
    counts = {(r.get("n_sequences"), r.get("listed")) for r in rows if r.get("davis")}
    line = f"on `{davis}`"
    if len(counts) > 1:
        line += ", rows on different numbers of sequences (column `sequences`)"
    elif (n := next(iter(counts))[0]) is not None:
        listed = next(iter(counts))[1]
        line += (f", {n} of its {listed} listed sequences" if listed and listed != n
                 else f", all {n} listed sequences" if listed else f", {n} sequences")
    scales = {r.get("eval_scale", 1.0) for r in rows if r.get("davis")} - {1.0}
    if scales:
        line += f", frames and masks resized by {', '.join(f'{s:g}' for s in sorted(scales))}"
    return line


def _f(x, fmt="{:.3f}") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else fmt.format(x)


def scores_table(rows: list[dict]) -> list[list[str]]:
    """J&F and, where any row has a keypoints evaluation, BADJA's PCK@0.2 beside it."""
    scores = [*SCORES, PCK] if any(r.get(PCK) is not None for r in rows) else list(SCORES)
    head = ["method", *scores, "train s", "clips/s", "batch", "sequences"]
    body = [[r["method"], *(_f(r.get(k)) for k in scores), _f(r.get("train_s"), "{:.0f}"),
             _f(r.get("clips_per_s"), "{:.2f}"), _f(r.get("batch"), "{}"), _sequences(r)] for r in rows]
    return [head, *body]


def timing_table(runs: list) -> list[list[str]]:
    """Thesis table 4.5: batch size, time per step and per epoch of each configuration."""
    head = ["run", "nodes", "label config", "img", "batch", "s/step", "steps/epoch", "s/epoch", "clips/s", "final loss"]
    body = []
    for run in map(Path, runs):
        cfg, s = _json(run / "config.json") or {}, _json(run / "summary.json") or {}
        step_s = [r["seconds"] for r in _log(run) if "seconds" in r][1:]  # the first step pays warm-up
        mean = sum(step_s) / len(step_s) if step_s else None
        per_epoch = cfg.get("steps_per_epoch")
        body.append([run.name, str(cfg.get("nodes", "-")), ",".join(cfg.get("label_configs") or []) or "-",
                     _f(cfg.get("img_size"), "{}"), _f(cfg.get("batch"), "{}"), _f(mean, "{:.2f}"),
                     _f(per_epoch, "{}"), _f(mean * per_epoch if mean and per_epoch else None, "{:.1f}"),
                     _f(s.get("clips_per_s"), "{:.2f}"), _f(s.get("final_loss"), "{:.3f}")])
    return [head, *body]


def text(table: list[list[str]]) -> str:
    w = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    return "\n".join("  ".join(c.ljust(w[i]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(r)) for r in table)


def markdown(table: list[list[str]]) -> str:
    lines = ["| " + " | ".join(table[0]) + " |", "|" + "---|" * len(table[0])]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in table[1:]])


def loss_overlay(runs: list, out: Path) -> Path | None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    drawn = False
    for run in map(Path, runs):
        rows = [r for r in _log(run) if "loss" in r]
        if rows:
            t = 0.0
            xs = []
            for r in rows:  # against training seconds: the comparison the thesis cares about
                t += r.get("seconds", 0.0)
                xs.append(t)
            ax.plot(xs, [r["loss"] for r in rows], lw=1, label=run.name)
            drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set(xlabel="training seconds", ylabel="walk loss", title="loss per training second")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def overlay_montage(eval_dirs: dict, out: Path, n_frames: int = 4) -> Path | None:
    """Rows = methods, columns = frames spread over the first sequence they all have."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    have = {k: Path(d) for k, d in eval_dirs.items() if list(Path(d).glob("*/overlay/*.png"))}
    if not have:
        return None
    seqs = set.intersection(*({p.parent.parent.name for p in d.glob("*/overlay/*.png")} for d in have.values()))
    if not seqs:
        return None
    seq = sorted(seqs)[0]
    frames = sorted(p.name for p in next(iter(have.values())).glob(f"{seq}/overlay/*.png"))
    pick = [frames[round(i * (len(frames) - 1) / max(n_frames - 1, 1))] for i in range(min(n_frames, len(frames)))]
    fig, axes = plt.subplots(len(have), len(pick), figsize=(3 * len(pick), 1.9 * len(have)), squeeze=False)
    for i, (name, d) in enumerate(have.items()):
        for j, f in enumerate(pick):
            ax = axes[i][j]
            p = d / seq / "overlay" / f
            if p.exists():
                ax.imshow(Image.open(p))
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(name, fontsize=8)
            if i == 0:
                ax.set_title(f"{seq} {f}", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def side_by_side(evals: dict, out: Path) -> list[str]:
    """Markdown lines: per evaluation with `--video` pictures, the still of the first sequence they all have
    (ground truth | prediction), copied beside the report and linked to its mp4."""
    from .side_by_side import STILL, VIDEO

    have = {name: {p.parents[1].name for p in Path(d).glob(f"*/{STILL}")} for name, d in evals.items()}
    have = {name: seqs for name, seqs in have.items() if seqs}
    if not have:
        return []
    common = set.intersection(*have.values())
    parts = ["## Ground truth | prediction", "",
             "Left the ground truth, right the prediction: the middle frame of each `evaluate davis --video` clip.", ""]
    for name, seqs in have.items():
        seq = min(common or seqs)
        src = Path(evals[name]) / seq
        still = f"side-by-side-{re.sub(r'[^A-Za-z0-9_.-]+', '-', name)}.png"
        shutil.copyfile(src / STILL, out / still)
        link = f" ([mp4]({os.path.relpath(src / VIDEO, out)}))" if (src / VIDEO).exists() else ""
        parts += [f"**{name}**, `{seq}`{link}", "", f"![{name}: {seq}]({still})", ""]
    return parts


def write_report(runs: list, eval_root, out) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = method_rows(runs, eval_root)
    parts = ["# spixwalk report", "",
             "## Training cost per configuration (cf. thesis table 4.5)", "", markdown(timing_table(runs)), "",
             f"## DAVIS label propagation (cf. thesis table 4.7), {scored_line(rows)}", "",
             markdown(scores_table(rows)), ""]
    if any(r.get(PCK) is not None for r in rows):
        parts += [f"{PCK}: BADJA keypoint propagation (`make eval-keypoints`), joints within 0.2 x sqrt(mask area) "
                  "of the annotation, pooled over the sequences evaluated.", ""]
    overlay = loss_overlay(runs, out / "loss-overlay.png")
    if overlay:
        parts += ["## Loss curves", "", f"![all runs]({overlay.name})", ""]
    for run in map(Path, runs):
        if (run / "loss.png").exists():
            shutil.copyfile(run / "loss.png", out / f"loss-{run.name}.png")
            parts += [f"![{run.name}](loss-{run.name}.png)", ""]
    evals = {BASELINES[k]: Path(eval_root) / k for k in BASELINES}
    evals.update({Path(r).name: Path(eval_root) / Path(r).name for r in runs})
    montage = overlay_montage(evals, out / "propagation.png")
    if montage:
        parts += ["## Propagation overlays", "", f"![propagation]({montage.name})", ""]
    parts += side_by_side(evals, out)
    path = out / "report.md"
    path.write_text("\n".join(parts))
    return path
