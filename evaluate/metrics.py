"""J (region IoU) and F (boundary F-measure) as davisvideochallenge/davis2017-evaluation computes them
in its semi-supervised mode, re-implemented (not copied) and checked against it number for number.

Conventions reproduced on purpose, because they move scores:
- the first and last annotated frames are not scored;
- the toolkit takes frame ids from the annotations and pads missing ones; here JPEGs, annotations and
  predictions must agree on ids (consecutive from 00000) or the sequence fails with the files named;
- void (255) is set to background in the ground truth and no pixel is excluded (the toolkit passes no
  void mask in semi-supervised mode), so predictions on void pixels count as false positives;
- the number of objects is the largest id in the first ground-truth frame; an object missing from
  the results scores as an empty mask; a result id above that count is an error;
- empty/empty gives J = 1 and F = 1; one side empty gives J = 0 and F = 0;
- boundaries are the toolkit's seg2bmap (a pixel differs from its E, S or SE neighbour), matched
  within a disk of radius ceil(0.008 x image diagonal), no thinning;
- decay bins are the toolkit's 4 overlapping bins (edges cast to uint8, as it does).
"""
import csv
import json
import math
import sys
import warnings
from pathlib import Path

import cv2
import numpy as np
from skimage.morphology import disk

from spixwalk.progress import Progress

from .davis_io import (InputError, check_results, count_frames, load_mask, load_result, mask_path, sequence_frames,
                       sequence_list)

MEASURES = ["J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"]


def jaccard(gt: np.ndarray, pred: np.ndarray) -> float:
    gt, pred = gt.astype(bool), pred.astype(bool)
    union = np.sum(gt | pred)
    if union == 0:
        return 1.0
    return np.sum(gt & pred) / union


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """1-pixel boundaries, offset half a pixel towards the origin (Martin's seg2bmap)."""
    m = mask.astype(bool)
    east = np.zeros_like(m)
    south = np.zeros_like(m)
    south_east = np.zeros_like(m)
    east[:, :-1] = m[:, 1:]
    south[:-1, :] = m[1:, :]
    south_east[:-1, :-1] = m[1:, 1:]
    b = (m ^ east) | (m ^ south) | (m ^ south_east)
    b[-1, :] = m[-1, :] ^ east[-1, :]
    b[:, -1] = m[:, -1] ^ south[:, -1]
    b[-1, -1] = False
    return b


def boundary_radius(shape, bound_th=0.008) -> int:
    return int(bound_th if bound_th >= 1 else math.ceil(bound_th * np.linalg.norm(shape)))


def f_boundary(gt: np.ndarray, pred: np.ndarray, bound_th=0.008) -> float:
    """Boundary F-measure of a predicted mask against the ground truth."""
    kernel = disk(boundary_radius(gt.shape, bound_th)).astype(np.uint8)
    pb, gb = boundary_map(pred), boundary_map(gt)
    n_pred, n_gt = int(pb.sum()), int(gb.sum())
    if n_pred == 0 and n_gt == 0:
        return 1.0
    if n_pred == 0 or n_gt == 0:
        return 0.0  # precision or recall is 0 and the other is 1
    pred_dil = cv2.dilate(pb.astype(np.uint8), kernel).astype(bool)
    gt_dil = cv2.dilate(gb.astype(np.uint8), kernel).astype(bool)
    precision = np.sum(pb & gt_dil) / float(n_pred)
    recall = np.sum(gb & pred_dil) / float(n_gt)
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def statistics(values) -> tuple[float, float, float]:
    """Mean, recall (fraction of frames > 0.5) and decay (first quarter minus last quarter)."""
    values = np.asarray(values, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        mean = np.nanmean(values)
        recall = np.nanmean(values > 0.5)
        edges = (np.round(np.linspace(1, len(values), 5) + 1e-10) - 1).astype(np.uint8)
        bins = [values[edges[i]:edges[i + 1] + 1] for i in range(4)]
        decay = np.nanmean(bins[0]) - np.nanmean(bins[3])
    return float(mean), float(recall), float(decay)


def score_sequence(davis, year, results, seq, tick=lambda: None, scale: float = 1.0) -> list[dict]:
    """Per-object J and F statistics of one sequence (objects numbered from 1), the ground truth read at
    `scale`; tick() once per scored frame."""
    frames = sequence_frames(davis, seq, year, every_frame=True)
    ids = [p.stem for p in frames]
    check_results(results, seq, ids)
    if len(ids) < 3:
        raise InputError(f"{seq}: {len(ids)} frames; semi-supervised scoring excludes the first and last, nothing left")
    first = load_mask(mask_path(davis, seq, ids[0]), year, scale)
    first = np.where(first == 255, 0, first)
    n_obj = int(first.max())
    if n_obj == 0:
        raise InputError(f"{seq}: first ground-truth frame has no object")
    J = np.zeros((n_obj, len(ids) - 2))
    F = np.zeros((n_obj, len(ids) - 2))
    for t, fid in enumerate(ids[1:-1]):
        gt = load_mask(mask_path(davis, seq, fid), year, scale)
        gt = np.where(gt == 255, 0, gt)
        res = load_result(Path(results) / seq / f"{fid}.png")
        if res.shape != gt.shape:
            raise InputError(f"{Path(results) / seq / fid}.png: size {res.shape} differs from ground truth {gt.shape}"
                             f" (read at --eval-scale {scale:g})")
        if int(res.max()) > n_obj:
            raise InputError(f"{Path(results) / seq / fid}.png: object id {int(res.max())} above the {n_obj} "
                             f"objects of the first ground-truth frame")
        for k in range(1, n_obj + 1):
            g, r = gt == k, res == k
            J[k - 1, t] = jaccard(g, r)
            F[k - 1, t] = f_boundary(g, r)
        tick()
    rows = []
    for k in range(n_obj):
        jm, jr, jd = statistics(J[k])
        fm, fr, fd = statistics(F[k])
        # the toolkit's J&F of an object, as of the whole set: the mean of its J-Mean and F-Mean
        rows.append({"name": f"{seq}_{k + 1}", "sequence": seq, "object": k + 1, "n_frames": len(ids) - 2,
                     "J&F-Mean": (jm + fm) / 2.0, "J-Mean": jm, "J-Recall": jr, "J-Decay": jd, "F-Mean": fm, "F-Recall": fr, "F-Decay": fd})
    return rows


def global_results(objects: list[dict]) -> dict:
    """Means over all objects of all sequences; J&F-Mean is the mean of the two means."""
    if not objects:
        return {m: float("nan") for m in MEASURES}
    g = {m: float(np.mean([o[m] for o in objects])) for m in MEASURES[1:]}
    return {"J&F-Mean": (g["J-Mean"] + g["F-Mean"]) / 2.0, **g}


def _scored(davis, year, results, seq, tick=lambda: None, scale: float = 1.0) -> tuple[list, str | None]:
    try:
        return score_sequence(davis, year, results, seq, tick, scale), None
    except InputError as e:
        return [], str(e)


def _scored_all(davis, year, results, names, jobs, tick, scale):
    """(rows, failure) per sequence in order: in this process with a tick per frame, or `jobs` processes."""
    if jobs == 1:
        return (_scored(davis, year, results, s, tick, scale) for s in names)
    from joblib import Parallel, delayed

    return Parallel(n_jobs=jobs, return_as="generator")(delayed(_scored)(davis, year, results, s, scale=scale)
                                                        for s in names)


def evaluate(davis, year, results, subset="val", sequences=None, progress=True, jobs=1, scale: float = 1.0) -> dict:
    """Score a results folder, `jobs` sequences at a time, against the ground truth read at `scale`. Returns
    {'global', 'per_object', 'failures', 'complete', ...}."""
    names = sequence_list(davis, year, subset, sequences)
    counts = [max(count_frames(davis, s) - 2, 0) for s in names]  # the first and last frames are not scored
    objects, failures = [], []
    with Progress(sum(counts), "metrics", unit="frame", enabled=progress) as bar:
        scored = _scored_all(davis, year, results, names, jobs, bar.update, scale)
        for i, (seq, (rows, why)) in enumerate(zip(names, scored)):
            objects += rows
            if why:
                print(f"error: {why}", file=sys.stderr)
                failures.append({"sequence": seq, "reason": why})
            bar.set(sum(counts[:i + 1]))  # whole sequences from worker processes; a failure's frames passed
    return {"davis": str(davis), "year": int(year), "set": subset, "results": str(results), "eval_scale": scale,
            "sequences": names, "listed": _listed(davis, year, subset), "complete": not failures, "global": global_results(objects),
            "per_object": objects, "failures": failures}


def _listed(davis, year, subset) -> int | None:
    """How many sequences ImageSets/<year>/<subset>.txt lists (None without it): the set a subset is cut from."""
    try:
        return len(sequence_list(davis, year, subset))
    except InputError:
        return None


def _fmt(x: float) -> str:
    return "" if np.isnan(x) else "%.3f" % x  # the toolkit's pandas float_format, NaN as empty


def _csv(path: Path, head: list, rows) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(head)
        w.writerows(rows)


def write(res: dict, results) -> dict:
    """Toolkit CSVs, and per-object-results with every measure of each object (J&F included), only when
    every sequence scored, so a partial run never looks complete; the JSON always. Scores at an --eval-scale
    other than 1 say so in a last column of the global CSV (at 1 its columns are the toolkit's)."""
    out = Path(results)
    subset = res["set"]
    paths = {"json": out / f"metrics-{subset}.json"}
    csvs = {"global_csv": f"global_results-{subset}.csv", "per_sequence_csv": f"per-sequence_results-{subset}.csv",
            "per_object_csv": f"per-object_results-{subset}.csv"}
    if res["complete"]:
        paths.update({k: out / name for k, name in csvs.items()})
        scale = res.get("eval_scale", 1.0)
        extra = ([["Eval-Scale"], [f"{scale:g}"]] if scale != 1 else [[], []])
        _csv(paths["global_csv"], MEASURES + extra[0], [[_fmt(res["global"][m]) for m in MEASURES] + extra[1]])
        objects = res["per_object"]
        _csv(paths["per_sequence_csv"], ["Sequence", "J-Mean", "F-Mean"],  # the toolkit's columns, unchanged
             [[o["name"], _fmt(o["J-Mean"]), _fmt(o["F-Mean"])] for o in objects])
        _csv(paths["per_object_csv"], ["Sequence", *MEASURES], [[o["name"], *(_fmt(o[m]) for m in MEASURES)]
                                                                for o in objects])
    else:
        for name in csvs.values():
            (out / name).unlink(missing_ok=True)
    paths["json"].write_text(json.dumps(res, indent=1))
    return {k: str(v) for k, v in paths.items()}


def print_table(res: dict) -> None:
    g = res["global"]
    scale = res.get("eval_scale", 1.0)
    at = f", frames and masks at {scale:g}x" if scale != 1 else ""
    print(f"---------- global results for {res['set']} ({len(res['per_object'])} objects{at}) ----------")
    print("  ".join(f"{m:>9}" for m in MEASURES))
    print("  ".join(f"{_fmt(g[m]):>9}" for m in MEASURES))
    print(f"---------- per object ----------")
    print(f"{'Sequence':<28}{'J&F-Mean':>9}{'J-Mean':>8}{'F-Mean':>8}")
    for o in res["per_object"]:
        print(f"{o['name']:<28}{_fmt(o['J&F-Mean']):>9}{_fmt(o['J-Mean']):>8}{_fmt(o['F-Mean']):>8}")
    for f in res["failures"]:
        print(f"FAILED {f['sequence']}: {f['reason']}")


def propagated(results) -> list[str] | None:
    """The sequences the results folder's propagation.json says `evaluate davis` propagated (failed ones
    included, so they are scored as failures), or None without that file."""
    path = Path(results) / "propagation.json"
    try:
        prop = json.loads(path.read_text())
        return [s["sequence"] for s in prop["sequences"] + prop["failures"]] or None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def propagated_scale(results) -> float | None:
    """The --eval-scale `evaluate davis` propagated the results folder at (None without its propagation.json)."""
    try:
        return float(json.loads((Path(results) / "propagation.json").read_text()).get("eval_scale", 1.0))
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def score_and_write(davis, year, results, subset="val", sequences=None, progress=True, quiet=False, jobs=1,
                    scale: float = 1.0) -> dict:
    """Score, write CSVs + JSON into the results folder, print the table; returns the JSON dict."""
    if not Path(results).is_dir():
        raise InputError(f"{results}: results folder not found")
    res = evaluate(davis, year, results, subset, sequences, progress, jobs, scale)
    res["written"] = write(res, results)
    if not quiet:
        print_table(res)
    return res
