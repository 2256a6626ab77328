"""The study's statistics and outputs: paired per-sequence bootstrap, comparisons, CSVs, figure, verdict.

Each scored checkpoint has one J&F per sequence (mean over its objects); two checkpoints are compared by
the mean of their per-sequence differences, with a 95% interval from resampling sequences with
replacement (the same resample for both sides: paired).
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

COLUMNS = ["method", "nodes", "point", "seconds", "clock", "steps", "clips_seen", "J&F-Mean", "J-Mean", "F-Mean",
           "cpu_seconds", "wall_seconds", "device_seconds", "checkpoint"]
SEQ_COLUMNS = ["method", "nodes", "point", "seconds", "steps", "sequence", "J&F", "J-Mean", "F-Mean"]
LABELS = {"patches": "patch nodes (CRW, 49 per frame)", "superpixels": "superpixel nodes (SLIC-30)",
          "mixed": "mixed (p=0.7 patches)", "random-cells": "random cells (30 Voronoi cells)"}
BOOT = 10000


def per_sequence(metrics: dict) -> dict[str, dict]:
    """{sequence: {J&F, J-Mean, F-Mean}} from `evaluate metrics` JSON, objects of a sequence averaged."""
    seqs: dict[str, list] = {}
    for o in metrics["per_object"]:
        seqs.setdefault(o["sequence"], []).append(o)
    out = {}
    for s, objs in seqs.items():
        j = float(np.mean([o["J-Mean"] for o in objs]))
        f = float(np.mean([o["F-Mean"] for o in objs]))
        out[s] = {"J&F": (j + f) / 2, "J-Mean": j, "F-Mean": f}
    return out


def bootstrap_diff(a, b, reps: int = BOOT, seed: int = 0) -> tuple[float, float, float]:
    """Mean of a - b over paired items and its 95% percentile interval from `reps` paired resamples."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if d.size == 0:
        raise ValueError("bootstrap of no pairs")
    idx = np.random.default_rng(seed).integers(0, d.size, size=(reps, d.size))
    means = d[idx].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(d.mean()), float(lo), float(hi)


def band(values, reps: int = BOOT, seed: int = 0) -> tuple[float, float]:
    """95% bootstrap interval of a mean over sequences (the figure's bands)."""
    _, lo, hi = bootstrap_diff(values, np.zeros(len(values)), reps, seed)
    return lo, hi


def compare(x: dict, y: dict, what: str) -> dict:
    """x - y in J&F points over the sequences both scored (x, y: study rows with a `per_seq` dict)."""
    seqs = sorted(set(x["per_seq"]) & set(y["per_seq"]))
    mean, lo, hi = bootstrap_diff([x["per_seq"][s]["J&F"] for s in seqs], [y["per_seq"][s]["J&F"] for s in seqs])
    return {"comparison": what, "a": f"{x['nodes']}@{x['point']}", "b": f"{y['nodes']}@{y['point']}",
            "a_seconds": x["seconds"], "b_seconds": y["seconds"], "a_clips": x["clips_seen"], "b_clips": y["clips_seen"],
            "sequences": len(seqs), "diff_points": round(100 * mean, 2), "ci_low": round(100 * lo, 2),
            "ci_high": round(100 * hi, 2)}


def comparisons(rows: list[dict]) -> list[dict]:
    """The study's questions: equal seconds, equal clips, the random-cell control, trained vs own step 0."""
    by = {}
    for r in rows:
        by.setdefault(r["nodes"], {})[r["point"]] = r
    out = []
    marks = lambda m: sorted((p for p in by.get(m, {}) if p.startswith("t")), key=lambda p: float(p[1:]))  # noqa: E731
    for other in ("patches", "random-cells", "mixed"):
        for p in marks("superpixels"):
            if p in by.get(other, {}):
                out.append(compare(by["superpixels"][p], by[other][p], f"superpixels - {other}, equal seconds"))
    for p, r in by.get("superpixels", {}).items():
        if p.startswith("clips-"):
            patch = next((q for q in by.get("patches", {}).values() if q["steps"] == r["steps"] and q["point"] != p
                          and q["point"] != "step0"), None)
            if patch:
                out.append(compare(r, patch, "superpixels - patches, equal clips seen"))
    for m, pts in by.items():
        ts = marks(m)
        if ts and "step0" in pts:
            out.append(compare(pts[ts[-1]], pts["step0"], f"{m}: trained - own step 0"))
    return out


def write_csv(path: Path, rows: list[dict], columns: list[str]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, columns, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def plot(rows: list[dict], baselines: list[dict], path: Path, clock: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for mode in LABELS:
        pts = sorted((r for r in rows if r["nodes"] == mode and not r["point"].startswith("clips-")),
                     key=lambda r: r["seconds"])
        if not pts:
            continue
        xs, ys = [r["seconds"] for r in pts], [r["J&F-Mean"] for r in pts]
        bands = [band([v["J&F"] for v in r["per_seq"].values()]) for r in pts]
        line, = ax.plot(xs, ys, marker="o", label=LABELS[mode])
        ax.fill_between(xs, [b[0] for b in bands], [b[1] for b in bands], color=line.get_color(), alpha=0.15)
    for r in baselines:
        ax.axhline(r["J&F-Mean"], color="grey", ls="--", label=r["method"])
    ax.set(xlabel=f"training seconds ({'process CPU' if clock == 'cpu' else 'device-busy'})",
           ylabel="J&F-Mean (95% bootstrap band over sequences)", title="DAVIS-2016 val: J&F vs training time")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _word(c: dict, better: str, worse: str) -> str:
    if c["ci_low"] > 0:
        return better
    if c["ci_high"] < 0:
        return worse
    return "no difference that can be told from noise"


def _cite(c: dict) -> str:
    return f"{c['diff_points']:+.1f} J&F points [{c['ci_low']:+.1f}, {c['ci_high']:+.1f}]"


# comparison name prefix -> (sentence head from the comparison, word if a > b, word if a < b)
SENTENCES = [
    ("superpixels - patches, equal seconds", lambda c: f"At equal training time ({c['a_seconds']:g} s), superpixels - patches",
     "superpixel nodes learn faster per second", "patch nodes learn faster per second"),
    ("superpixels - patches, equal clips", lambda c: f"At equal clips seen ({c['a_clips']}), superpixels - patches",
     "superpixels learn more per clip", "patches learn more per clip"),
    ("superpixels - random-cells", lambda c: f"Control at {c['a_seconds']:g} s: superpixels - random cells",
     "object-shaped nodes matter beyond full-frame encoding", "random cells do better"),
    ("", lambda c: f"{c['comparison'].split(':')[0]} vs its own step 0", "it learned", "it got worse"),
]


def verdict(comps: list[dict], n_seq: int, recipe: str) -> str:
    """study.md's paragraph: what was measured, stated whichever way it falls."""
    parts = [f"Paired bootstrap over {n_seq} scored sequences, 95% intervals; {recipe}."]
    for c in comps:
        if c["comparison"].startswith("superpixels - mixed"):
            continue
        head, better, worse = next((h, b, w) for p, h, b, w in SENTENCES if c["comparison"].startswith(p))
        parts.append(f"{head(c)} = {_cite(c)}: {_word(c, better, worse)}.")
    return " ".join(parts)


def markdown(rows: list[dict], baselines: list[dict], comps: list[dict], text: str) -> str:
    lines = ["# Learning-signal study", "", text, "", "| method | point | seconds | steps | clips | J&F | J | F |",
             "|---|---|---|---|---|---|---|---|"]
    order = list(LABELS)
    for r in baselines + sorted(rows, key=lambda r: (order.index(r["nodes"]), r["seconds"], r["steps"])):
        lines.append(f"| {r['method']} | {r['point']} | {r['seconds']:g} | {r['steps']} | {r['clips_seen']} | "
                     f"{r['J&F-Mean']:.3f} | {r['J-Mean']:.3f} | {r['F-Mean']:.3f} |")
    lines += ["", "| comparison | a | b | sequences | difference (points) | 95% interval |", "|---|---|---|---|---|---|"]
    lines += [f"| {c['comparison']} | {c['a']} | {c['b']} | {c['sequences']} | {c['diff_points']:+.2f} | "
              f"[{c['ci_low']:+.2f}, {c['ci_high']:+.2f}] |" for c in comps]
    return "\n".join(lines) + "\n"


def write_all(work: Path, rows: list[dict], baselines: list[dict], clock: str, recipe: str) -> str:
    """study.csv, study_per_sequence.csv, study_comparisons.csv, study.png, study.md; returns the verdict."""
    everything = baselines + rows
    write_csv(work / "study.csv", everything, COLUMNS)
    write_csv(work / "study_per_sequence.csv",
              [{**r, "sequence": s, **v} for r in everything for s, v in sorted(r["per_seq"].items())], SEQ_COLUMNS)
    comps = comparisons(rows)
    write_csv(work / "study_comparisons.csv", comps, list(comps[0]) if comps else ["comparison"])
    plot(rows, baselines, work / "study.png", clock)
    n_seq = len(next(iter(everything))["per_seq"]) if everything else 0
    text = verdict(comps, n_seq, recipe)
    (work / "study.md").write_text(markdown(rows, baselines, comps, text))
    return text
