"""Benchmark of the evaluation stage -> bench-results/eval.json.

1. Propagation: our local-window propagation vs the straightforward full-affinity implementation of
   CRW's algorithm, same features (random-init res3 encoder, fixed seed), same frames, side by side:
   predictions identical?, max |soft label difference|, propagation seconds per frame, speed-up.
2. Peak RSS and seconds per frame of `python -m evaluate davis` end to end (decode, encoder,
   propagation, PNG writing), one subprocess per DAVIS-2016 sequence so each peak is its own.
3. Metrics vs the official davis2017-evaluation toolkit on DAVIS-2016 (converted to its layout in a
   temporary folder), DAVIS-2017 breakdance and a synthetic set with void pixels: max |difference|
   per object of J/F mean, recall and decay. The toolkit is run from --official (never part of this
   repository) with --official-python; when it is absent the figure stored from the last side-by-side
   run is reported and labelled as such.
4. Keypoints vs masks: `evaluate keypoints` on a BADJA sequence (one channel per joint) and `evaluate davis`
   (background + object) on the same frames, each in its own process: seconds per frame, peak RSS, ratios;
   then both propagations stepped in turn on the same features in one process (the fair time ratio on a
   shared CPU).
Each part is one bench_* function returning its dict; main() parses the options, writes the JSON, prints.
`--quick` measures every figure (the same JSON keys) on one sequence and two frames: a smoke run.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks import add_quick, parse_with_quick, write_json
from spixwalk.evaluate import metrics, synth
from spixwalk.evaluate.davis_io import frame_paths, load_frame, load_mask, mask_path, save_indexed, sequence_list
from spixwalk.evaluate.features import EncoderFeatures
from spixwalk.evaluate.propagate import Propagator, propagate_full
from spixwalk.evaluate.davis_run import first_frame_labels, hard_labels

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
# From the side-by-side run of this benchmark with the toolkit present (see the report of issue 4).
STORED_OFFICIAL = {"max_abs_diff": 0.0, "objects": 14,
                   "source": "side-by-side run of 2026-11-25: 8 DAVIS-2016 sequences (RGB-baseline results) and "
                             "2 synthetic sequences with void rings, J/F mean, recall, decay per object"}

OFFICIAL_SNIPPET = r"""
import json, sys
from davis2017.evaluation import DAVISEvaluation
m = DAVISEvaluation(davis_root=sys.argv[2], task='semi-supervised', gt_set='val').evaluate(sys.argv[3])
out = {}
for i, name in enumerate(m['J']['M_per_object']):
    out[name] = {f'{k}-{s}': float(m[k][c][i]) for k in 'JF' for c, s in (('M', 'Mean'), ('R', 'Recall'), ('D', 'Decay'))}
print(json.dumps(out))
"""


def propagation_row(davis, seq, n_frames, featurize, log) -> dict:
    """Ours vs the full-affinity reference on the first n_frames of seq, same features."""
    frames = frame_paths(davis, seq)[:n_frames]
    imgs = [load_frame(p) for p in frames]
    feats = [featurize(im) for im in imgs]
    ids, lab0 = first_frame_labels(load_mask(mask_path(davis, seq, frames[0].stem), 2016), feats[0].shape[1:])
    t0 = time.perf_counter()
    prop = Propagator()
    prop.start(feats[0], lab0)
    ours = [prop.step(f) for f in feats[1:]]
    t1 = time.perf_counter()
    ref = propagate_full(feats, lab0)
    t2 = time.perf_counter()
    size = imgs[0].shape[:2]
    same = all(np.array_equal(hard_labels(a, ids, size), hard_labels(b, ids, size)) for a, b in zip(ours, ref))
    diff = max(float((a - b).abs().max()) for a, b in zip(ours, ref))
    row = {"sequence": seq, "frames": len(frames), "ours_s_per_frame": (t1 - t0) / (len(frames) - 1),
           "full_s_per_frame": (t2 - t1) / (len(frames) - 1), "identical": same, "max_abs_soft_diff": diff}
    row["speedup"] = row["full_s_per_frame"] / row["ours_s_per_frame"]
    log(f"  {seq}: ours {row['ours_s_per_frame']:.2f} s/frame, full {row['full_s_per_frame']:.2f} s/frame, "
        f"x{row['speedup']:.1f}, identical={same}, max|diff|={diff:.2e}")
    return row


def bench_propagation(davis, seqs, n_frames, log) -> dict:
    """Part 1: ours (local windows) vs full affinity, per sequence and over all."""
    log("propagation: ours (local windows) vs full affinity, same features")
    featurize = EncoderFeatures(seed=0)
    rows = [propagation_row(davis, seq, n_frames, featurize, log) for seq in seqs]
    ours = sum(r["ours_s_per_frame"] for r in rows)
    full = sum(r["full_s_per_frame"] for r in rows)
    return {"propagation": rows, "propagation_speedup_vs_full": full / ours,
            "predictions_identical": all(r["identical"] for r in rows),
            "max_abs_soft_label_diff": max(r["max_abs_soft_diff"] for r in rows),
            "propagation_seconds_per_frame": ours / len(rows)}


def end_to_end_row(davis, seq, max_frames, log) -> dict:
    """`python -m evaluate davis` on one sequence in its own process: its propagation.json entry."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "evaluate", "davis", "--davis", str(davis), "--year", "2016",
               "--sequences", seq, "--init", "random", "--no-overlays", "--no-metrics", "--out", out]
        if max_frames:
            cmd += ["--max-frames", str(max_frames)]
        subprocess.run(cmd, check=True, cwd=REPO, capture_output=True)
        s = json.loads((Path(out) / "propagation.json").read_text())["sequences"][0]
    log(f"  {seq}: {s['frames']} frames, {s['seconds_per_frame']:.2f} s/frame end to end "
        f"({s['propagation_seconds_per_frame']:.2f} propagation), peak RSS {s['peak_rss_gb']:.2f} GB")
    return s


def bench_rss(davis, seqs, max_frames, log) -> dict:
    """Part 2: peak RSS and seconds per frame end to end, one process per sequence."""
    log(f"end to end (python -m evaluate davis, random-init encoder, 480p) on {len(seqs)} sequences")
    rows = [end_to_end_row(davis, seq, max_frames, log) for seq in seqs]
    frames = sum(r["frames"] - 1 for r in rows)
    return {"end_to_end": rows, "peak_rss_gb": max(r["peak_rss_gb"] for r in rows),
            "seconds_per_frame": sum(r["seconds"] for r in rows) / frames,
            "rss_frames_per_sequence": max_frames or "all"}


def shifted_root(davis, badja_json, dst) -> tuple[Path, Path]:
    """A DAVIS-2016 root whose sequence starts at BADJA's query frame (symlinks renumbered from 00000) and the
    annotation renumbered alike: the mask run and the keypoint run then propagate the same frames."""
    seq = Path(badja_json).stem
    entries = json.loads(Path(badja_json).read_text())
    start = min(int(Path(e["image_path"]).stem) for e in entries)
    for sub, ext in (("JPEGImages", "jpg"), ("Annotations", "png")):
        d = dst / sub / "480p" / seq
        d.mkdir(parents=True)
        for p in sorted((Path(davis) / sub / "480p" / seq).glob(f"*.{ext}"))[start:]:
            (d / f"{int(p.stem) - start:05d}.{ext}").symlink_to(p)
    for e in entries:
        e["image_path"] = f"{Path(e['image_path']).parent}/{int(Path(e['image_path']).stem) - start:05d}.jpg"
    (dst / "ann").mkdir()
    (dst / "ann" / f"{seq}.json").write_text(json.dumps(entries))
    return dst, dst / "ann"


def interleaved_steps(davis, badja, seq, n_frames, log) -> dict:
    """Propagation + readout per frame, masks (background + object) and joints (one channel each) stepped in
    turn on the same features in one process, so a shared CPU's load falls on both alike."""
    from spixwalk.evaluate.keypoint_io import read_badja
    from spixwalk.evaluate.keypoints import joint_labels, read_points, to_grid

    track = read_badja(Path(badja) / f"{seq}.json", davis)
    frames = track.frames[track.query:track.query + n_frames]
    featurize = EncoderFeatures(seed=0)
    feats = [featurize(load_frame(p)) for p in frames]
    ids, masks0 = first_frame_labels(load_mask(mask_path(davis, seq, frames[0].stem), 2016), feats[0].shape[1:])
    q = track.visible[track.query]
    joints0 = joint_labels(to_grid(track.points[track.query][q], (1.0, 1.0)), feats[0].shape[1:])
    props = {"masks": Propagator(), "keypoints": Propagator()}
    props["masks"].start(feats[0], masks0)
    props["keypoints"].start(feats[0], joints0)
    readout = {"masks": lambda soft: hard_labels(soft, ids, (480, 854)), "keypoints": read_points}
    secs = {k: 0.0 for k in props}
    for f in feats[1:]:
        for k, prop in props.items():
            t0 = time.perf_counter()
            readout[k](prop.step(f))
            secs[k] += time.perf_counter() - t0
    per = {k: v / (len(feats) - 1) for k, v in secs.items()}
    log(f"  interleaved on {len(feats)} frames: {per['keypoints']:.3f} vs {per['masks']:.3f} s/frame "
        f"(propagation + readout, {int(q.sum())} vs {len(ids)} channels)")
    return {"keypoints_interleaved_s_per_frame": per,
            "keypoints_interleaved_ratio": per["keypoints"] / per["masks"]}


def bench_keypoints(davis, badja, seq, max_frames, log) -> dict:
    """Part 4: `evaluate keypoints` (one channel per joint) vs `evaluate davis` (background + object) on the
    same frames, random-init encoder, 480p, each in its own process: seconds per frame and peak RSS."""
    with tempfile.TemporaryDirectory() as tmp:
        root, ann = shifted_root(davis, Path(badja) / f"{seq}.json", Path(tmp))
        common = ["--sequences", seq, "--init", "random", "--max-frames", str(max_frames or 100000)]
        runs = {"masks": ["davis", "--davis", str(root), "--year", "2016", "--no-overlays", "--out", f"{tmp}/m"],
                "keypoints": ["keypoints", "--dataset", "badja", "--root", str(root), "--annotations", str(ann),
                              "--out", f"{tmp}/k"]}
        rows = {}
        for name, args in runs.items():
            subprocess.run([sys.executable, "-m", "evaluate", *args, *common], check=True, cwd=REPO,
                           capture_output=True)
            summary = json.loads((Path(tmp) / name[0] / ("propagation.json" if name == "masks" else
                                                        "keypoints.json")).read_text())
            rows[name] = {k: summary["sequences"][0][k] for k in ("frames", "seconds_per_frame",
                                                                  "propagation_seconds_per_frame", "peak_rss_gb")}
            rows[name]["channels"] = summary["sequences"][0].get("joints", 1) + (name == "masks")
    m, k = rows["masks"], rows["keypoints"]
    res = {"keypoints_vs_masks": rows, "keypoints_sequence": seq,
           "keypoints_time_ratio": k["seconds_per_frame"] / m["seconds_per_frame"],
           "keypoints_propagation_ratio": k["propagation_seconds_per_frame"] / m["propagation_seconds_per_frame"],
           "keypoints_rss_ratio": k["peak_rss_gb"] / m["peak_rss_gb"]}
    log(f"keypoints vs masks on {seq} ({m['frames']} frames, {k['channels']} vs {m['channels']} channels): "
        f"{k['seconds_per_frame']:.2f} vs {m['seconds_per_frame']:.2f} s/frame end to end "
        f"(x{res['keypoints_time_ratio']:.2f}; propagation x{res['keypoints_propagation_ratio']:.2f}), "
        f"peak RSS {k['peak_rss_gb']:.2f} vs {m['peak_rss_gb']:.2f} GB")
    res.update(interleaved_steps(davis, badja, seq, max_frames or 100000, log))
    return res


def toolkit_root_2016(src, seqs, dst):
    """DAVIS-2016 in the toolkit's layout: 0/1 indexed masks, ImageSets/2017/val.txt."""
    for seq in seqs:
        (dst / "JPEGImages" / "480p").mkdir(parents=True, exist_ok=True)
        os.symlink(Path(src, "JPEGImages", "480p", seq).resolve(), dst / "JPEGImages" / "480p" / seq)
        adir = dst / "Annotations" / "480p" / seq
        adir.mkdir(parents=True)
        for p in frame_paths(src, seq):
            save_indexed(load_mask(mask_path(src, seq, p.stem), 2016), adir / f"{p.stem}.png")
    (dst / "ImageSets" / "2017").mkdir(parents=True)
    (dst / "ImageSets" / "2017" / "val.txt").write_text("".join(s + "\n" for s in seqs))


def toolkit_root_subset(src, seqs, dst):
    for sub in ("JPEGImages", "Annotations"):
        (dst / sub / "480p").mkdir(parents=True, exist_ok=True)
        for seq in seqs:
            os.symlink(Path(src, sub, "480p", seq).resolve(), dst / sub / "480p" / seq)
    (dst / "ImageSets" / "2017").mkdir(parents=True)
    (dst / "ImageSets" / "2017" / "val.txt").write_text("".join(s + "\n" for s in seqs))


def ensure_results(davis, year, seqs, out, log):
    """Results to score: propagated with the RGB baseline where `out` lacks a sequence."""
    missing = [s for s in seqs if not (Path(out) / s).is_dir()]
    if missing:
        log(f"  propagating {len(missing)} sequences with --features rgb into {out}")
        subprocess.run([sys.executable, "-m", "evaluate", "davis", "--davis", str(davis), "--year", str(year),
                        "--sequences", ",".join(missing), "--features", "rgb", "--no-overlays", "--no-metrics",
                        "--out", str(out)],
                       check=True, cwd=REPO, capture_output=True)


def compare_official(name, davis, year, seqs, results, official, py, log):
    ours = {o["name"]: o for o in metrics.evaluate(davis, year, results, sequences=seqs, progress=False)["per_object"]}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "davis"
        (toolkit_root_2016 if year == 2016 else toolkit_root_subset)(davis, seqs, root)
        # run in the toolkit's folder: `python -c` imports davis2017 from its working directory
        r = subprocess.run([py, "-c", OFFICIAL_SNIPPET, str(official), str(root), str(Path(results).resolve())],
                           capture_output=True, text=True, check=True, cwd=Path(official).resolve())
    theirs = json.loads(r.stdout.strip().splitlines()[-1])
    assert set(theirs) == set(ours), f"object sets differ: {sorted(theirs)} vs {sorted(ours)}"
    diff = max(abs(ours[n][k] - v) for n in theirs for k, v in theirs[n].items())
    log(f"  {name}: {len(theirs)} objects, max |ours - official| = {diff:.3g}")
    return {"set": name, "objects": len(theirs), "max_abs_diff": diff}


def side_by_side(a, d16: Path, official: Path, py: Path, log) -> list[dict]:
    """Ours vs the toolkit on DAVIS-2016, DAVIS-2017 breakdance (where present) and a synthetic set with voids."""
    work = Path(tempfile.mkdtemp(prefix="bench-eval-"))
    seqs16 = sequences(d16, a.metrics_sequences)
    r16 = Path(a.results16) if a.results16 else work / "r16"
    ensure_results(d16, 2016, seqs16, r16, log)
    cmp = [compare_official("davis2016-val", d16, 2016, seqs16, r16, official, py, log)]
    if Path(a.davis17).is_dir():
        ensure_results(a.davis17, 2017, ["breakdance"], work / "r17", log)
        cmp.append(compare_official("davis2017-mini/breakdance", Path(a.davis17), 2017, ["breakdance"],
                                    work / "r17", official, py, log))
    names = synth.generate(work / "synth", n_sequences=2, n_frames=12, height=120, width=216, seed=1)
    ensure_results(work / "synth", 2017, names, work / "rsynth", log)
    cmp.append(compare_official("synthetic (void rings, 3 objects)", work / "synth", 2017, names,
                                work / "rsynth", official, py, log))
    return cmp


def bench_metrics(a, d16: Path, log) -> dict:
    """Part 3: metrics vs the official toolkit, side by side where it is installed, else the stored figure."""
    official, py = Path(a.official), Path(a.official_python)
    if not ((official / "davis2017" / "evaluation.py").is_file() and py.is_file()):
        log(f"metrics: official toolkit not found at {official}; reporting the stored figure")
        return {"metrics_max_abs_diff": STORED_OFFICIAL["max_abs_diff"],
                "metrics_official_source": f"STORED figure, not measured in this run: {STORED_OFFICIAL['source']}"}
    log("metrics: ours vs the official toolkit")
    cmp = side_by_side(a, d16, official, py, log)
    return {"metrics_vs_official": cmp, "metrics_max_abs_diff": max(c["max_abs_diff"] for c in cmp),
            "metrics_official_source": "measured side by side in this run"}


def sequences(davis: Path, spec: str) -> list[str]:
    """A comma list of DAVIS-2016 sequences, or 'all' of them."""
    return sequence_list(davis, 2016) if spec == "all" else spec.split(",")


def measure(a, log) -> dict:
    """The parts not in --skip, over the previous run's figures where a part is skipped."""
    skip = set(a.skip.split(","))
    out = Path(a.out)
    # a part skipped in this run keeps the figures of the previous run
    res = json.loads(out.read_text()) if out.is_file() and skip - {""} else {}
    res.update(torch_threads=torch.get_num_threads(), cpu_count=os.cpu_count())
    d16 = Path(a.davis16)
    if not d16.is_dir():
        sys.exit(f"error: {d16}: DAVIS-2016 data not found")
    if "prop" not in skip:
        res.update(bench_propagation(d16, a.prop_sequences.split(","), a.prop_frames, log))
    if "rss" not in skip:
        res.update(bench_rss(d16, sequences(d16, a.rss_sequences), a.rss_frames, log))
    if "metrics" not in skip:
        res.update(bench_metrics(a, d16, log))
    if "keypoints" not in skip:
        res.update(bench_keypoints(d16, a.badja, a.kp_sequence, a.kp_frames, log))
    return res


SUMMARY = ("propagation_speedup_vs_full", "predictions_identical", "max_abs_soft_label_diff",
           "propagation_seconds_per_frame", "seconds_per_frame", "peak_rss_gb", "metrics_max_abs_diff",
           "keypoints_time_ratio", "keypoints_propagation_ratio", "keypoints_rss_ratio", "keypoints_interleaved_ratio")
# --quick: every figure (the same JSON keys) from one sequence and two frames (the full-affinity reference
# costs seconds per 480p frame), < 2 minutes on 2 idle cores
QUICK = {"prop_sequences": "blackswan", "prop_frames": 2, "rss_sequences": "blackswan", "rss_frames": 2,
         "metrics_sequences": "blackswan", "kp_frames": 3}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--davis16", default=str(DATA / "davis2016-val"))
    ap.add_argument("--davis17", default=str(DATA / "davis2017-mini"))
    ap.add_argument("--prop-sequences", default="blackswan,car-shadow", help="sequences for ours vs full")
    ap.add_argument("--prop-frames", type=int, default=24, help="frames per sequence for ours vs full (> 21 "
                    "reaches the steady state of 21 distinct context frames)")
    ap.add_argument("--rss-sequences", default="car-shadow,cows",
                    help="sequences for peak RSS / s per frame ('all'); default: the shortest and the longest")
    ap.add_argument("--rss-frames", type=int, default=0, help="frames per sequence for RSS (0: all)")
    ap.add_argument("--official", default="/tmp/davis2017-evaluation", help="checkout of the official toolkit")
    ap.add_argument("--official-python", default="/tmp/offvenv/bin/python", help="python with its deps")
    ap.add_argument("--metrics-sequences", default="blackswan,car-shadow,motocross-jump,scooter-black,drift-straight",
                    help="DAVIS-2016 sequences scored by both toolkits ('all')")
    ap.add_argument("--results16", default=None, help="existing DAVIS-2016 results to score (else RGB baseline)")
    ap.add_argument("--badja", default=str(DATA / "badja" / "joint_annotations"), help="BADJA's <seq>.json folder")
    ap.add_argument("--kp-sequence", default="dog", help="BADJA sequence of the keypoints vs masks comparison")
    ap.add_argument("--kp-frames", type=int, default=0, help="frames of it from the query frame on (0: all)")
    ap.add_argument("--skip", default="", help="comma list of parts to skip: prop,rss,metrics,keypoints")
    ap.add_argument("--out", default=str(REPO / "bench-results" / "eval.json"))
    add_quick(ap, QUICK)
    return parse_with_quick(ap, QUICK, argv)


def main(argv=None):
    a = parse_args(argv)
    log = lambda m: print(m, flush=True)  # noqa: E731
    res = measure(a, log)
    out = write_json(res, a.out)
    log("\nsummary")
    for k in SUMMARY:
        if k in res:
            log(f"  {k:<32}{res[k]}")
    log(f"wrote {out}")


if __name__ == "__main__":
    main()
