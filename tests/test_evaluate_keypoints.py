"""Keypoint propagation (BADJA, JHMDB): coordinates, identity propagation, PCK against independent computations
written from the references' definitions, readers on generated files, bad input; VIP's mIoU."""
import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import savemat

from spixwalk.evaluate import pck
from spixwalk.evaluate.cli import main
from spixwalk.evaluate.keypoint_io import Track, read_badja, read_jhmdb
from spixwalk.evaluate.keypoints import from_grid, joint_labels, read_points, to_grid

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
BADJA = DATA / "badja" / "joint_annotations"
DAVIS16 = DATA / "davis2016-val"
needs_badja = pytest.mark.skipif(not (BADJA.is_dir() and DAVIS16.is_dir()),
                                 reason=f"BADJA annotations / DAVIS-2016 frames not found under {DATA}")


def _noise_frame(h, w, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random((h, w, 3)) * 255).astype(np.uint8)


def _fake_davis(root, seq, n, h=96, w=128, area_rows=40):
    """A DAVIS-2016-style root: n noise frames and masks whose object is area_rows x w pixels."""
    for sub in ("JPEGImages", "Annotations"):
        (root / sub / "480p" / seq).mkdir(parents=True, exist_ok=True)
    for t in range(n):
        Image.fromarray(_noise_frame(h, w, t)).save(root / "JPEGImages" / "480p" / seq / f"{t:05d}.jpg")
        m = np.zeros((h, w), np.uint8)
        m[:area_rows + t] = 255
        Image.fromarray(m, mode="L").save(root / "Annotations" / "480p" / seq / f"{t:05d}.png")
    return root


def _badja_json(path, entries):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([{"image_path": f"DAVIS/JPEGImages/Full-Resolution/x/{t:05d}.jpg",
                                 "segmentation_path": "", "joints": j, "visibility": v} for t, j, v in entries]))


# ---------------------------------------------------------------- coordinates


@needs_badja
def test_badja_coordinates_round_trip_real():
    """full resolution -> 480p (x 480/1080) -> propagation grid at x0.5 -> a Gaussian label read back -> 480p."""
    raw = json.loads((BADJA / "dog.json").read_text())
    track = read_badja(BADJA / "dog.json", DAVIS16)
    assert track.frames[track.query].name == "00003.jpg" and track.size == (480, 854)
    first = raw[0]
    assert np.allclose(track.points[track.query], np.asarray(first["joints"]) * 480 / 1080)
    vis = np.asarray(first["visibility"])
    pts = track.points[track.query][vis]
    for scale in (1.0, 0.5):
        s = (round(480 * scale) / 480, round(854 * scale) / 854)
        hw = (math.ceil(480 * scale / 8), math.ceil(854 * scale / 8))
        assert np.allclose(from_grid(to_grid(pts, s), s), pts)
        back = from_grid(read_points(joint_labels(to_grid(pts, s), hw)), s)
        assert np.abs(back - pts).max() < 0.5, np.abs(back - pts).max()  # sub-pixel at 480p
        coarse = from_grid(read_points(joint_labels(to_grid(pts, s), hw), "argmax"), s)
        assert np.abs(coarse - pts).max() <= 4 / scale + 1e-9  # half a cell


def test_invisible_joints_at_zero_are_not_outside_the_frame(tmp_path):
    root = _fake_davis(tmp_path / "d", "seq", 3)
    _badja_json(tmp_path / "a" / "seq.json", [(1, [[0, 0], [540, 720]], [False, True]),
                                              (2, [[0, 0], [270, 360]], [False, True])])
    t = read_badja(tmp_path / "a" / "seq.json", root)  # frames 96 high: scale 96/1080
    assert t.query == 1 and t.size == (96, 128)
    assert np.allclose(t.points[1][1], [540 * 96 / 1080, 720 * 96 / 1080])


# ---------------------------------------------------------------- propagation


@needs_badja
def test_identical_frames_return_every_joint_where_it_started(tmp_path):
    """Six copies of dog's query frame: every propagated joint stays within one 480p pixel of its start."""
    seq, src = "dog", DAVIS16 / "JPEGImages" / "480p" / "dog" / "00003.jpg"
    for sub, f in (("JPEGImages", src), ("Annotations", DAVIS16 / "Annotations" / "480p" / "dog" / "00003.png")):
        d = tmp_path / "d" / sub / "480p" / seq
        d.mkdir(parents=True)
        for t in range(6):
            (d / f"{t:05d}{f.suffix}").symlink_to(f)
    entry = json.loads((BADJA / "dog.json").read_text())[0]
    _badja_json(tmp_path / "a" / "dog.json", [(t, entry["joints"], entry["visibility"]) for t in (0, 5)])
    out = tmp_path / "out"
    assert main(["keypoints", "--dataset", "badja", "--root", str(tmp_path / "d"), "--annotations",
                 str(tmp_path / "a"), "--init", "random", "--eval-scale", "0.5", "--out", str(out)]) == 0
    start = {int(j): np.asarray(p) * 480 / 1080 for j, (p, v) in enumerate(zip(entry["joints"], entry["visibility"]))
             if v}
    rows = list(csv.DictReader(open(out / "dog" / "keypoints.csv")))
    assert {r["frame"] for r in rows} == {f"{t:05d}" for t in range(6)}
    assert {int(r["joint"]) for r in rows} == set(start)
    for r in rows:
        assert np.abs(np.array([float(r["row"]), float(r["col"])]) - start[int(r["joint"])]).max() <= 1.0, r
        assert r["visible"] == ("1" if r["frame"] in ("00000", "00005") else "-1")
    table = list(csv.DictReader(open(out / "pck.csv")))
    assert [r["sequence"] for r in table] == ["dog", "overall"] and float(table[-1]["pck@0.2"]) == 1.0


# ---------------------------------------------------------------- BADJA PCK


def badja_reference(points, visible, preds, areas, query, alpha=0.2):
    """Segmentation-based PCK written from its definition: visible annotated joints of the frames after the
    query, among those visible at the query, correct within alpha * sqrt(mask area)."""
    correct = total = 0
    for t in points:
        if t <= query:
            continue
        for j in range(len(points[t])):
            if not (visible[t][j] and visible[query][j]):
                continue
            total += 1
            dy, dx = preds[t][j][0] - points[t][j][0], preds[t][j][1] - points[t][j][1]
            if math.sqrt(dy * dy + dx * dx) <= alpha * math.sqrt(areas[t]):
                correct += 1
    return correct, total


def test_badja_pck_equals_independent_computation(tmp_path):
    root = _fake_davis(tmp_path / "d", "seq", 5)
    rng = np.random.default_rng(1)
    vis = {t: rng.random(6) < 0.7 for t in range(5)}
    vis[0][:] = [True, True, True, True, False, True]
    pts = {t: rng.uniform(10, 80, (6, 2)) for t in range(5)}
    masks = {t: root / "Annotations" / "480p" / "seq" / f"{t:05d}.png" for t in range(5)}
    track = Track("seq", sorted((root / "JPEGImages" / "480p" / "seq").glob("*.jpg")), 0, pts, vis,
                  list(range(6)), (96, 128), masks)
    areas = {t: 128 * (40 + t) for t in range(5)}
    preds = {t: pts[t] + rng.normal(0, 9, (6, 2)) for t in range(5)}
    for t in range(1, 5):
        preds[t][~vis[t]] = 1e6  # invisible joints: far off, must not count
        preds[t][4] = 1e6  # joint 4 was invisible at the query: never propagated, never scored
    res = pck.badja_counts(track, preds, vis[0])
    correct, total = badja_reference(pts, vis, preds, areas, 0)
    assert 0 < correct < total and (res["correct"], res["scored_joints"]) == (correct, total)
    assert res["pck@0.2"] == correct / total
    assert res["unqueried_joints"] == sum(int(vis[t][4]) for t in range(1, 5))


@needs_badja
def test_badja_pck_on_real_annotations_with_planted_predictions():
    track = read_badja(BADJA / "cows.json", DAVIS16)
    rng = np.random.default_rng(0)
    preds = {t: p + rng.normal(0, 40, p.shape) for t, p in track.points.items()}
    areas = {t: int((np.array(Image.open(track.masks[t])) > 0).sum()) for t in track.points}
    res = pck.badja_counts(track, preds, track.visible[track.query])
    correct, total = badja_reference(track.points, track.visible, preds, areas, track.query)
    assert total > 100 and 0 < correct < total and (res["correct"], res["scored_joints"]) == (correct, total)


# ---------------------------------------------------------------- JHMDB


def _jhmdb_video(folder, pos_1based, h=64, w=80):
    frames = folder / "frames"
    frames.mkdir(parents=True)
    for t in range(pos_1based.shape[2]):
        Image.fromarray(_noise_frame(h, w, t)).save(frames / f"{t + 1:05d}.png")
    savemat(folder / "joint_positions.mat", {"pos_img": pos_1based})
    return frames, folder / "joint_positions.mat"


def jhmdb_reference(gts, preds, alpha):
    """eval_pck.py's definition: visible = prediction x >= 0; per frame k > 0 the box 0.6 * diagonal of the
    visible ground truth; per joint pooled over videos, then averaged over joints."""
    dist = {}
    for gt, pr in zip(gts, preds):  # (2, J, T) x/y arrays
        for k in range(1, gt.shape[2]):
            vis = [j for j in range(gt.shape[1]) if pr[0, j, k] >= 0]
            xs, ys = [gt[0, j, k] for j in vis], [gt[1, j, k] for j in vis]
            box = 0.6 * math.hypot(max(xs) - min(xs), max(ys) - min(ys)) if vis else 1.0
            for j in vis:
                d = math.hypot(pr[0, j, k] - gt[0, j, k], pr[1, j, k] - gt[1, j, k]) / box
                dist.setdefault(j, []).append(d)
    return sum(sum(d <= alpha for d in v) / len(v) for v in dist.values()) / len(dist)


def test_jhmdb_reader_and_pck_equal_independent_computation(tmp_path):
    rng = np.random.default_rng(2)
    gts, preds, named = [], [], []
    for v in range(2):
        pos = rng.uniform(5, 60, (2, 15, 4)) + 1  # 1-based x, y as JHMDB stores them
        frames, mat = _jhmdb_video(tmp_path / f"v{v}", pos)
        track = read_jhmdb(frames, mat)
        assert len(track.frames) == 4 and np.allclose(track.points[2][:, 0], pos[1, :, 2] - 1)  # row = y - 1
        pred = pos - 1 + rng.normal(0, 4, pos.shape)
        pred[:, 3, :] = -1  # a joint whose channel emptied: left out, as CRW's -1
        gts.append(pos - 1)
        preds.append(pred)
        exists = {t: pred[0, :, t] >= 0 for t in range(4)}
        named.append((track.name, pck.jhmdb_distances(track, {t: pred[::-1, :, t].T for t in range(4)}, exists)))
    table = pck.jhmdb_table(named)
    for a in (0.1, 0.2):
        assert table[-1][f"pck@{a:g}"] == pytest.approx(jhmdb_reference(gts, preds, a), abs=1e-12)
    assert 0 < table[-1]["pck@0.1"] < table[-1]["pck@0.2"] <= 1


def test_jhmdb_cli_on_generated_files(tmp_path):
    pos = np.tile(np.array([[20.0, 40, 60, 90], [15, 30, 45, 10]])[:, :, None], (1, 1, 5)) + 1  # x 90: outside
    frames, mat = _jhmdb_video(tmp_path / "clip", pos)
    (tmp_path / "list.txt").write_text(f"clip/frames clip/joint_positions.mat\n")
    out = tmp_path / "out"
    assert main(["keypoints", "--dataset", "jhmdb", "--root", str(tmp_path), "--annotations",
                 str(tmp_path / "list.txt"), "--features", "rgb", "--out", str(out), "--video"]) == 0
    rows = list(csv.DictReader(open(out / "frames" / "keypoints.csv")))
    # label band over annotated | propagated joints, frame 2
    shown = np.array(Image.open(out / "frames" / "side-by-side" / "still.png"))
    band, still = shown[:16], shown[16:]
    assert shown.shape == (16 + 64, 160, 3) and (out / "frames" / "side-by-side" / "video.mp4").stat().st_size > 0
    assert (band[:, :80] > 200).any() and (band[:, 80:] > 200).any()  # "ground truth" | "prediction" in white
    plain = _noise_frame(64, 80, 2)
    assert (still[:, :80] != plain).any(axis=2)[15, 20] and (still[:, 80:] != plain).any(axis=2).sum() > 20
    assert len(rows) == 5 * 3 and "3" not in {r["joint"] for r in rows}  # joint 3 lies outside the frame
    assert rows[0] == {"frame": "00001", "joint": "0", "row": "15.00", "col": "20.00", "visible": "1"}
    head = next(csv.reader(open(out / "pck.csv")))
    assert head == ["sequence", "scored_joints", "pck@0.1", "pck@0.2"]


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("case, message", [
    ("outside", "lies outside the frame"), ("no-joints", "has no 'joints'"), ("missing-frame", "frames missing"),
    ("unannotated-frame", "missing from"), ("bad-json", "unreadable BADJA annotation")])
def test_bad_badja_input_one_line_exit_2(tmp_path, capsys, case, message):
    root = _fake_davis(tmp_path / "d", "seq", 3)
    entries = [(0, [[540, 640], [100, 100]], [True, True]), (2, [[500, 600], [0, 0]], [True, False])]
    if case == "outside":
        entries[1] = (2, [[1200, 600], [0, 0]], [True, False])  # row 1200 of 1080
    _badja_json(tmp_path / "a" / "seq.json", entries)
    if case == "no-joints":
        data = json.loads((tmp_path / "a" / "seq.json").read_text())
        del data[1]["joints"]
        (tmp_path / "a" / "seq.json").write_text(json.dumps(data))
    elif case == "missing-frame":
        (root / "JPEGImages" / "480p" / "seq" / "00001.jpg").unlink()
    elif case == "unannotated-frame":
        _badja_json(tmp_path / "a" / "seq.json", [*entries, (7, [[1, 1], [1, 1]], [True, True])])
    elif case == "bad-json":
        (tmp_path / "a" / "seq.json").write_text("[{")
    rc = main(["keypoints", "--dataset", "badja", "--root", str(root), "--annotations", str(tmp_path / "a"),
               "--features", "rgb", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()


def test_missing_mask_is_a_recorded_failure(tmp_path, capsys):
    root = _fake_davis(tmp_path / "d", "seq", 3)
    _fake_davis(root, "two", 3)
    for s in ("seq", "two"):
        _badja_json(tmp_path / "a" / f"{s}.json", [(0, [[540, 640]], [True]), (2, [[500, 600]], [True])])
    (root / "Annotations" / "480p" / "two" / "00002.png").unlink()
    out = tmp_path / "out"
    assert main(["keypoints", "--dataset", "badja", "--root", str(root), "--annotations", str(tmp_path / "a"),
                 "--features", "rgb", "--out", str(out)]) == 1
    assert "00002.png: mask missing" in capsys.readouterr().err
    assert (out / "seq" / "keypoints.csv").exists() and not (out / "two").exists()
    assert [r["sequence"] for r in csv.DictReader(open(out / "pck.csv"))] == ["seq", "overall"]


# ---------------------------------------------------------------- VIP


def _vip_root(root, n=4, h=64, w=96):
    for t in range(n):
        (root / "Images" / "v").mkdir(parents=True, exist_ok=True)
        (root / "Category_ids" / "v").mkdir(parents=True, exist_ok=True)
        Image.fromarray(_noise_frame(h, w, t)).save(root / "Images" / "v" / f"{t:06d}.jpg")
        parts = np.zeros((h, w), np.uint8)
        parts[10:30, 10 + 2 * t:40 + 2 * t] = 2  # hair
        parts[30:60, 20:70] = 4  # upper-clothes
        parts[0, :] = 255  # ignored by the metric
        Image.fromarray(parts, mode="L").save(root / "Category_ids" / "v" / f"{t:06d}.png")
    return root


def test_vip_miou_equals_independent_histogram(tmp_path):
    from spixwalk.evaluate import vip

    root = _vip_root(tmp_path / "vip")
    out = tmp_path / "out"
    assert main(["vip", "--root", str(root), "--features", "rgb", "--out", str(out)]) == 0
    inter, gt_n, pr_n = np.zeros(20), np.zeros(20), np.zeros(20)
    for t in range(1, 4):
        gt = np.array(Image.open(root / "Category_ids" / "v" / f"{t:06d}.png")).astype(int)
        pr = np.array(Image.open(out / "v" / f"{t:06d}.png")).astype(int)
        keep = gt < 20
        for c in range(20):
            inter[c] += np.sum((gt == c) & (pr == c) & keep)
            gt_n[c] += np.sum((gt == c) & keep)
            pr_n[c] += np.sum((pr == c) & keep)
    union = gt_n + pr_n - inter
    expect = np.mean(inter[union > 0] / union[union > 0])
    got = json.loads((out / "vip.json").read_text())
    assert got["mIoU"] == pytest.approx(expect, abs=1e-12) and 0 < expect <= 1
    assert [r["sequence"] for r in csv.DictReader(open(out / "miou.csv"))] == ["v", "overall"]
    assert vip.fast_hist(np.array([[0, 255], [1, 1]]), np.array([[0, 1], [1, 0]]), 2).tolist() == [[1, 0], [1, 1]]


def test_vip_bad_root_exit_2(tmp_path, capsys):
    assert main(["vip", "--root", str(tmp_path), "--features", "rgb", "--out", str(tmp_path / "o")]) == 2
    assert "Images/<video>/" in capsys.readouterr().err


def test_report_shows_pck_beside_jf(tmp_path):
    from spixwalk.evaluate import report

    ev = tmp_path / "eval"
    (ev / "rgb" / "keypoints-badja").mkdir(parents=True)
    (ev / "rgb" / "metrics-val.json").write_text(json.dumps({"global": {s: 0.3 for s in report.SCORES}}))
    rows = [{"sequence": "dog", "scored_frames": 2, "scored_joints": 4, "correct": 1, "unqueried_joints": 0,
             "pck@0.2": 0.25}]
    pck.write_table(ev / "rgb" / "keypoints-badja" / "pck.csv", pck.badja_table(rows))
    table = report.scores_table(report.method_rows([], ev))
    assert table[0][len(report.SCORES) + 1] == "PCK@0.2" and table[1][len(report.SCORES) + 1] == "0.250"
    shutil.rmtree(ev / "rgb" / "keypoints-badja")
    assert "PCK@0.2" not in report.scores_table(report.method_rows([], ev))[0]  # no keypoints run: no column
