"""The study's outputs: study.csv (one row per scored snapshot), study_comparisons.csv, study.png, study.md.

Comparisons are paired: the same seed's runs of two arms (same initial weights, same clip order) at the
same FLOP budget, scored on the same sequences; intervals from the hierarchical bootstrap (seeds, then
sequences). The verdict sentence is produced here from the primary comparison's interval, whichever way
it falls.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from spixwalk.train import recipes

from .bootstrap import hierarchical, paired

COLUMNS = ["arm", "cell", "seed", "point", "budget_flops", "flops", "steps", "clips_seen", "seconds", "loader_wait",
           "device", "precision", "threads", "torch", "J&F-Mean", "J-Mean", "F-Mean", "PCK", "checkpoint"]
# (a, b, what it isolates); the first is the primary comparison, named before the runs
COMPARISONS = [
    ("superpixels", "patches-crw", "superpixels vs CRW as shipped (the question)"),
    ("superpixels", "grid-cells", "node shape, at equal cost (both encode the frame once)"),
    ("grid-cells", "patches-crw", "encoding the frame once vs 49 overlapping crops, shapeless nodes"),
    ("superpixels", "random-cells", "object shape vs shapeless cells that keep their place in a video"),
    ("superpixels", "patches-thesis", "superpixels vs patches under the same (thesis) loss"),
    ("patches-thesis", "patches-crw", "the thesis loss vs CRW's, on patches"),
]


def per_sequence(metrics: dict) -> dict[str, float]:
    """{sequence: J&F} from `evaluate metrics` JSON, a sequence's objects averaged."""
    seqs: dict[str, list] = {}
    for o in metrics["per_object"]:
        seqs.setdefault(o["sequence"], []).append((o["J-Mean"] + o["F-Mean"]) / 2)
    return {s: float(np.mean(v)) for s, v in seqs.items()}


def write_csv(path: Path, rows: list[dict], columns: list[str]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, columns, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


METRICS = (("per_seq", "J&F"), ("pck_seq", "PCK"))
RGB = "raw RGB features"


def _arm(rows: list[dict], arm: str, point: str) -> dict:
    """{metric: {seed: {sequence: score}}} of one arm at one point."""
    return {m: {r["seed"]: r[m] for r in rows if r["arm"] == arm and r["point"] == point and r.get(m)}
            for m, _ in METRICS}


def comparisons(rows: list[dict], final: str, ref: dict | None = None) -> list[dict]:
    """Every comparison both arms ran, at every budget point; plus each arm at `final` against its step 0 and
    against raw RGB features (`ref`: the same per-sequence scores for every seed, no training)."""
    out = []
    points = sorted({r["point"] for r in rows if r["point"] != "step0"})
    arms = list(dict.fromkeys(r["arm"] for r in rows))
    for a, b, what in COMPARISONS:
        for p in points:
            out += _compare(_arm(rows, a, p), _arm(rows, b, p), f"{a} - {b} @ {p}", p, what,
                            primary=(a, b) == recipes.PRIMARY and p == final)
    for arm in arms:
        out += _compare(_arm(rows, arm, final), _arm(rows, arm, "step0"), f"{arm} - its step 0", final,
                        "learning at all", False)
    if ref:
        seeds = {r["seed"] for r in rows}
        colour = {m: {s: ref[m] for s in seeds if ref.get(m)} for m, _ in METRICS}
        for arm in arms:
            out += _compare(_arm(rows, arm, final), colour, f"{arm} - {RGB} @ {final}", final, "more than colour", False)
    return out


def _compare(x: dict, y: dict, name: str, point: str, what: str, primary: bool) -> list[dict]:
    """x - y for each metric both have, x and y as `_arm` gives them."""
    found = []
    for metric, label in METRICS:
        d = paired(x[metric], y[metric])
        if d.size == 0:
            continue
        mean, lo, hi = hierarchical(d)
        found.append({"comparison": name, "primary": primary and label == "J&F", "metric": label, "point": point,
                      "what": what, "seeds": d.shape[0], "sequences": d.shape[1],
                      "difference": round(100 * mean, 2), "low": round(100 * lo, 2), "high": round(100 * hi, 2)})
    return found


def verdict(comps: list[dict], budget: float, planned: int = 0) -> str:
    """The answer in one sentence, from the primary comparison's interval; marked provisional while fewer
    than the `planned` seeds are scored (a study cut short, reported so far)."""
    p = next((c for c in comps if c["primary"]), None)
    if p is None:
        return "The primary comparison (superpixels - CRW patches at the final budget) has not been scored yet."
    if p["seeds"] < planned:
        return f"Provisional, {p['seeds']} of the {planned} seeds planned scored: {_answer(p, budget)}"
    return _answer(p, budget)


def _answer(p: dict, budget: float) -> str:
    cite = f"{p['difference']:+.1f} J&F points [{p['low']:+.1f}, {p['high']:+.1f}]"
    head = (f"At equal training FLOPs ({budget:.3g} per run), superpixels - CRW patches = {cite} "
            f"({p['seeds']} seeds x {p['sequences']} sequences, 95% hierarchical bootstrap, expanded percentile "
            f"interval)")
    if p["low"] > 0:
        return f"{head}: superpixel nodes learn more per FLOP than CRW's patches here."
    if p["high"] < 0:
        return f"{head}: CRW's patches learn more per FLOP than superpixel nodes here."
    return f"{head}: no difference can be told from run-to-run and sequence noise at this budget."


def throughput(rows: list[dict]) -> list[str]:
    """FLOPs turned into time on the device the rows ran on, side by side for the arms (from the trained rows)."""
    lines = ["| arm | device | precision | threads | GFLOPs per step | seconds per step | GFLOP/s | loader wait |",
             "|---|---|---|---|---|---|---|---|"]
    for arm in dict.fromkeys(r["arm"] for r in rows):
        done = [r for r in rows if r["arm"] == arm and int(r["steps"]) > 0 and float(r["seconds"]) > 0]
        if not done:
            continue
        steps, secs, flops = (sum(float(r[k]) for r in done) for k in ("steps", "seconds", "flops"))
        waits = [float(r["loader_wait"]) for r in done if r["loader_wait"] != ""]
        r0 = done[0]
        lines.append(f"| {arm} | {r0['device']} | {r0['precision']} | {r0['threads']} | {flops / steps / 1e9:,.0f} | "
                     f"{secs / steps:.2f} | {flops / secs / 1e9:.1f} | "
                     f"{f'{sum(waits) / len(waits):.1%}' if waits else '-'} |")
    return lines if len(lines) > 2 else []


def markdown(rows: list[dict], comps: list[dict], text: str, header: str, ref: dict | None = None) -> str:
    base = ""
    if ref:
        pck = f", PCK@0.2 {float(ref['PCK']):.3f}" if ref["PCK"] != "" else ""
        base = f"Reference, no training: {RGB} (8x8-pooled normalised colour) score J&F {ref['J&F-Mean']:.3f}{pck}."
    lines = ["# Study: superpixel nodes vs CRW patches at equal training FLOPs", "", header, "", text, "",
             *([base, ""] if base else []), *throughput(rows), "",
             "| comparison | metric | primary | seeds | sequences | difference (points) | 95% interval | isolates |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {c['comparison']} | {c['metric']} | {'yes' if c['primary'] else ''} | {c['seeds']} | {c['sequences']} | "
              f"{c['difference']:+.2f} | [{c['low']:+.2f}, {c['high']:+.2f}] | {c['what']} |" for c in comps]
    lines += ["", "| arm | cell | seed | point | GFLOPs | steps | seconds | J&F | PCK |", "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['arm']} | {r['cell']} | {r['seed']} | {r['point']} | {r['flops'] / 1e9:,.0f} | {r['steps']} | "
              f"{r['seconds']:g} | {r['J&F-Mean']:.3f} | {r['PCK'] if r['PCK'] != '' else '-'} |" for r in rows]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path, ref: dict | None = None) -> None:
    """J&F vs training FLOPs, every seed a thin line, the mean over seeds a thick one; raw RGB dashed."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, arm in enumerate(dict.fromkeys(r["arm"] for r in rows)):
        colour = f"C{i}"
        mine = [r for r in rows if r["arm"] == arm]
        for seed in sorted({r["seed"] for r in mine}):
            pts = sorted((r["flops"], r["J&F-Mean"]) for r in mine if r["seed"] == seed)
            ax.plot(*zip(*pts), color=colour, lw=0.7, alpha=0.5, marker=".")
        by_flops: dict = {}
        for r in mine:
            by_flops.setdefault(r["budget_flops"], []).append(r["J&F-Mean"])
        xs = sorted(by_flops)
        ax.plot(xs, [np.mean(by_flops[x]) for x in xs], color=colour, lw=2.2, marker="o", label=arm)
    if ref:
        ax.axhline(ref["J&F-Mean"], color="grey", ls="--", lw=1, label=RGB)
    ax.set(xlabel="training FLOPs (forward + backward, torch.utils.flop_counter)", ylabel="J&F-Mean",
           title="J&F vs training FLOPs: every seed (thin), mean over seeds (thick)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_all(work: Path, rows: list[dict], final: str, budget: float, header: str, ref: dict | None = None,
              planned: int = 0) -> str:
    """Every output file under WORK (`ref`: raw RGB features' scores, a reference; `planned`: the seeds the
    study runs); returns the verdict sentence."""
    write_csv(work / "study.csv", rows, COLUMNS)
    write_csv(work / "study_per_sequence.csv",
              [{**r, "sequence": s, "J&F": v} for r in rows for s, v in sorted(r["per_seq"].items())],
              ["arm", "cell", "seed", "point", "flops", "sequence", "J&F"])
    comps = comparisons(rows, final, ref)
    write_csv(work / "study_comparisons.csv", comps,
              ["comparison", "primary", "metric", "point", "seeds", "sequences", "difference", "low", "high", "what"])
    text = verdict(comps, budget, planned)
    if rows:
        plot(rows, work / "study.png", ref)
    (work / "study.md").write_text(markdown(rows, comps, text, header, ref))
    return text
