"""`spixwalk study`: the FLOP budget against a hand count, the control arms' label maps, the hierarchical
bootstrap on known answers, one recipe file read by every entry point, seeds shared across arms, options
checked before any work, and a tiny end-to-end study through the real stages."""
import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats

from preprocess_fixtures import lavfi_videos
from spixwalk.evaluate.davis_io import write_listing
from spixwalk.evaluate.synth import generate
from spixwalk.preprocess.superpixels import grid_shape, label_video
from spixwalk.study import plan, report
from spixwalk.study.bootstrap import hierarchical, paired
from spixwalk.study.cli import main
from spixwalk.train import recipes
from spixwalk.train.flops import clip_flops, clip_inputs
from spixwalk.train.model import WalkNet, patch_grid
from spixwalk.train.options import parse_args


# ---------------------------------------------------------------- FLOPs


def hand_count(nodes: str, size: int, T: int, M: int, cycles: str) -> int:
    """FLOPs from the layers' shapes (2 per multiply-add): each conv/linear forward once, backward twice (input
    and weight gradients) except the first conv, whose input needs no gradient; pooling's matmul forward and
    its features' gradient; every walk matmul forward and both operands' gradients."""
    net = WalkNet(*patch_grid(size), padding="reflect", norm="cifar", patch_jitter="crw").train()
    frames, weights, is_patch, _ = clip_inputs(nodes, size, T, M)
    layers = []

    def hook(m, inp, out):
        k = m.kernel_size[0] * m.kernel_size[1] * m.in_channels // m.groups if isinstance(m, torch.nn.Conv2d) \
            else m.in_features
        layers.append((m is net.encoder.conv1, 2 * out.numel() * k))
    for m in net.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            m.register_forward_hook(hook)
    with torch.no_grad():
        net(frames, weights, is_patch)
    total = sum(f * (2 if first else 3) for first, f in layers)
    n = 49 if nodes == "patches" else M
    if nodes != "patches":
        total += 2 * (2 * T * M * (size // 8) ** 2 * 512)  # pooling: forward + the features' gradient
    mm = 2 * n * n * 128  # one affinity matmul (n x 128 by 128 x n)
    walk = 2 * n ** 3  # one product of two transition matrices
    ks = range(1, T) if cycles == "all" else range(2, T)
    total += 3 * (2 * (T - 1) * mm)  # forward and backward affinities, forward + 2 gradients each
    total += 3 * walk * ((T - 2) + sum(ks))  # walk prefixes t=0..k, then k steps back per cycle
    return total


@pytest.mark.parametrize("nodes,cycles", [("superpixels", "all"), ("patches", "crw"), ("superpixels", "crw")])
def test_flop_count_matches_a_hand_count(nodes, cycles):
    assert clip_flops(nodes, img_size=64, clip_len=4, n_nodes=9, cycles=cycles) == hand_count(nodes, 64, 4, 9, cycles)


def test_budget_buys_each_arm_its_steps_and_patches_cost_more():
    sp, pa = clip_flops("superpixels", img_size=64), clip_flops("patches", img_size=64)
    assert pa > 2 * sp  # 49 overlapping crops of a quarter side: about 3x the encoder's pixels
    marks = plan.marks(8e12, 3)
    assert marks == [2e12, 4e12, 8e12]
    assert plan.steps_at(marks, int(1e12)) == [2, 4, 8] and plan.steps_at([1.0], 10) == [1]


# ---------------------------------------------------------------- control arms


def test_grid_cells_are_the_same_regular_grid_on_every_frame_of_every_video():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 255, (3, 64, 64, 3), dtype=np.uint8)
    b = rng.integers(0, 255, (2, 64, 64, 3), dtype=np.uint8)
    la, na = label_video(a, "grid", {"n_segments": 25}, "v1")
    lb, _ = label_video(b, "grid", {"n_segments": 25}, "v2")
    assert grid_shape(25) == (5, 5) and (na == 25).all()
    assert (la == la[0]).all() and (lb[0] == la[0]).all()
    assert len(np.unique(la[0])) == 25
    assert len(np.unique(la[0][:13, :13])) == 1 and la[0][0, 0] != la[0][0, 63]


def test_random_cells_are_drawn_once_per_video():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 255, (4, 64, 64, 3), dtype=np.uint8)
    la, na = label_video(a, "randvid", {"n_segments": 25}, "video-a")
    lb, _ = label_video(a, "randvid", {"n_segments": 25}, "video-b")
    again, _ = label_video(a[:2], "randvid", {"n_segments": 25}, "video-a")  # a video labelled in pieces
    assert (la == la[0]).all() and not (la[0] == lb[0]).all() and (again[0] == la[0]).all()
    assert 15 <= na[0] <= 25 and la.max() == na[0] - 1
    per_frame, _ = label_video(a, "random", {"n_segments": 25}, "video-a")
    assert not (per_frame[0] == per_frame[1]).all()  # the old control redraws every frame


# ---------------------------------------------------------------- bootstrap


def test_hierarchical_bootstrap_of_a_constant_difference_is_exact():
    assert hierarchical(np.full((5, 14), 0.03)) == pytest.approx((0.03, 0.03, 0.03))


def test_hierarchical_bootstrap_holds_the_seed_to_seed_spread():
    """Seeds that disagree widen the interval; a sequence-only bootstrap of one seed would not see it."""
    rng = np.random.default_rng(0)
    seq = rng.normal(0, 0.01, 14)
    spread = np.array([-0.06, -0.02, 0.0, 0.02, 0.06])[:, None] + seq  # seed effects dominate
    mean, lo, hi = hierarchical(spread)
    assert mean == pytest.approx(spread.mean()) and lo < -0.02 and hi > 0.02
    one_seed = hierarchical(spread[2:3])
    assert one_seed[2] - one_seed[1] < 0.02


def test_hierarchical_bootstrap_matches_the_normal_theory_of_seed_means():
    rng = np.random.default_rng(1)
    d = rng.normal(0.05, 0.1, size=(200, 1)) + rng.normal(0, 0.01, size=(200, 6))
    mean, lo, hi = hierarchical(d)
    half = 1.96 * d.mean(1).std() / np.sqrt(len(d))
    assert lo == pytest.approx(mean - half, abs=0.15 * half) and hi == pytest.approx(mean + half, abs=0.15 * half)


def test_five_seeds_get_the_t_interval_of_their_means_not_a_narrower_one():
    """With sequence noise negligible the hierarchical bootstrap is the seed bootstrap; its expanded interval is
    about Student's t interval of the 5 seed means (a plain percentile interval is about 0.63 of it)."""
    rng = np.random.default_rng(3)
    d = rng.normal(0.03, 0.04, (5, 1)) + rng.normal(0, 0.002, (5, 14))
    m = d.mean(1)
    t_width = 2 * stats.t.ppf(0.975, 4) * m.std(ddof=1) / np.sqrt(5)
    _, lo, hi = hierarchical(d)
    assert 0.85 * t_width < hi - lo < 1.1 * t_width


def test_five_seed_intervals_cover_the_true_difference_95_percent_of_the_time():
    """Simulated studies of this design (5 seeds x 14 sequences, seed, sequence and residual noise, true
    difference 0): the registered level holds (a plain percentile interval covered 82-90%)."""
    rng = np.random.default_rng(0)
    hits = [lo <= 0 <= hi for lo, hi in (hierarchical(rng.normal(0, 0.01, (5, 1)) + rng.normal(0, 0.03, (1, 14))
                                                      + rng.normal(0, 0.03, (5, 14)), n=4000, seed=i)[1:]
                                         for i in range(300))]
    assert np.mean(hits) >= 0.92


def test_one_seed_of_one_sequence_has_no_interval():
    mean, lo, hi = hierarchical(np.array([[0.1]]))
    assert mean == 0.1 and np.isnan(lo) and np.isnan(hi)
    assert "no difference can be told" in report.verdict(
        [{"primary": True, "difference": 10.0, "low": lo, "high": hi, "seeds": 1, "sequences": 1}], 1e14)


def test_frozen_cells_read_before_the_tuning_chose_them_are_called_provisional(monkeypatch):
    from spixwalk.study import cli
    a = cli.parse_args(["--arms", "superpixels,patches-crw", "--work", "w"])
    a.arm_list, a.cell_list, a.scored_list, a.machine = ["superpixels", "patches-crw"], ["frozen"], ["x"], "cpu"
    monkeypatch.setattr(recipes, "FROZEN_ON", None)
    monkeypatch.setattr(recipes, "FROZEN", {arm: "lr3e-4-cos" for arm in recipes.ARMS})
    assert "superpixels lr3e-4-cos, patches-crw lr3e-4-cos; PROVISIONAL" in cli.header(a)
    monkeypatch.setattr(recipes, "FROZEN_ON", "2026-12-09 from work/study")
    monkeypatch.setattr(recipes, "FROZEN", {**recipes.FROZEN, "patches-crw": "lr1e-4-cos"})
    assert "patches-crw lr1e-4-cos; chosen 2026-12-09 from work/study)" in cli.header(a)
    a.cell_list = ["lr1e-4-cos"]
    assert "cells lr1e-4-cos; seeds" in cli.header(a)


def test_a_verdict_from_fewer_seeds_than_planned_says_it_is_provisional():
    comp = [{"primary": True, "difference": 5.0, "low": 1.0, "high": 9.0, "seeds": 2, "sequences": 14}]
    assert report.verdict(comp, 1e14, planned=5).startswith("Provisional, 2 of the 5 seeds planned scored: At equal")
    assert report.verdict(comp, 1e14, planned=2).startswith("At equal training FLOPs")


def test_paired_keeps_only_what_both_arms_scored():
    a = {0: {"x": 0.5, "y": 0.6}, 1: {"x": 0.4, "y": 0.3}, 2: {"x": 0.1, "y": 0.1}}
    b = {0: {"x": 0.4, "y": 0.5, "z": 0.9}, 1: {"x": 0.4, "y": 0.2}}
    assert paired(a, b) == pytest.approx(np.array([[0.1, 0.1], [0.0, 0.1]]))


# ---------------------------------------------------------------- recipes and seeds


def test_each_arm_is_compared_with_raw_rgb_the_same_reference_for_every_seed():
    seqs = {"a": 0.5, "b": 0.7}
    rows = [{"arm": "superpixels", "seed": s, "point": "p1", "per_seq": {q: v + 0.01 * s for q, v in seqs.items()},
             "pck_seq": {}} for s in (0, 1)]
    ref = {"J&F-Mean": 0.6, "PCK": "", "per_seq": {q: v - 0.1 for q, v in seqs.items()}, "pck_seq": {}}
    (c,) = [c for c in report.comparisons(rows, "p1", ref) if "raw RGB" in c["comparison"]]
    assert (c["seeds"], c["sequences"], c["difference"]) == (2, 2, 10.5)  # +10 points, plus the seeds' 0 and 1
    assert not any("raw RGB" in c["comparison"] for c in report.comparisons(rows, "p1"))


def test_train_preset_is_the_recipe_file(tmp_path):
    for arm in recipes.ARMS:
        a = parse_args(["--store", str(tmp_path), "--run", str(tmp_path / "r"), "--preset", f"study-{arm}"])
        r = recipes.recipe(arm)
        assert {k: getattr(a, k) for k in r} == r, arm
        a = parse_args(["--store", str(tmp_path), "--run", str(tmp_path / "r"), "--preset", f"study-{arm}",
                        "--lr", "5e-5"])
        assert a.lr == 5e-5  # an explicit option still wins
    assert parse_args(["--store", "s", "--run", "r", "--preset", "study-patches-crw"]).cycles == "crw"
    assert parse_args(["--store", "s", "--run", "r", "--preset", "study-superpixels"]).cycles == "all"


def test_make_study_runs_the_package_study():
    import subprocess
    out = subprocess.run(["make", "-n", "study"], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1]).stdout
    assert "spixwalk.study" in out and "benchmarks.study" not in out


# ---------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    videos = root / "videos"
    lavfi_videos(videos, 2, seconds=2.0)
    names = generate(root / "davis", n_sequences=2, n_frames=4, height=64, width=96, n_objects=1)
    for png in (root / "davis" / "Annotations").rglob("*.png"):  # DAVIS-2016 masks: mode L, 255 = the object
        Image.fromarray(np.where(np.array(Image.open(png)) == 1, 255, 0).astype(np.uint8), "L").save(png)
    write_listing(root / "davis", 2016, "val", names)
    return videos, root / "davis"


def _args(tiny, work, *extra):
    videos, davis = tiny
    return ["--train-videos", str(videos), "--davis", str(davis), "--work", str(work), "--img-size", "64",
            "--batch", "2", "--threads", "1", "--jobs", "2", "--eval-scale", "1", "--keypoints", "none", *extra]


def test_unusable_options_exit_2_before_any_work(tiny, tmp_path, capsys):
    work = tmp_path / "w"
    for bad in (["--arms", "superpixels,nope"], ["--cells", "lr9"], ["--points", "0"], ["--budget-flops", "-1"],
                ["--scored", "synth-00,zz"], ["--eval-scale", "2"], ["--seeds", "a,b"],
                ["--train-videos", str(tmp_path / "nowhere")]):
        capsys.readouterr()
        assert main(_args(tiny, work, *bad)) == 2, bad
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and bad[0] in err[0], (bad, err)
        assert not work.exists()


def test_scored_sequences_must_not_be_training_video(tiny, tmp_path, capsys):
    videos, davis = tiny
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "synth-01.mp4").write_bytes((videos / "clip00.mp4").read_bytes())
    args = _args(tiny, tmp_path / "w")
    args[1] = str(tmp_path / "v")
    assert main(args) == 2
    assert "synth-01" in capsys.readouterr().err and not (tmp_path / "w").exists()


def test_tiny_study_end_to_end_seeds_shared_and_rerun_reuses(tiny, tmp_path, capsys):
    work = tmp_path / "w"
    sp = clip_flops("superpixels", img_size=64) * 2
    args = _args(tiny, work, "--arms", "superpixels,grid-cells", "--seeds", "3,4", "--points", "1",
                 "--budget-flops", str(sp))
    assert main(args) == 0
    rows = list(csv.DictReader(open(work / "study.csv")))
    assert set(report.COLUMNS) <= set(rows[0])
    by = {(r["arm"], r["seed"], r["point"]): r for r in rows}
    assert set(by) == {(a, s, p) for a in ("superpixels", "grid-cells") for s in ("3", "4") for p in ("step0", "p1")}
    for arm in ("superpixels", "grid-cells"):
        assert [by[(arm, "3", p)]["steps"] for p in ("step0", "p1")] == ["0", "1"]
        assert float(by[(arm, "3", "p1")]["flops"]) == sp and by[(arm, "3", "p1")]["precision"] == "fp32"
    # seed k: every arm starts from the same weights (scored once) and reads clips in the same order
    for seed in ("3", "4"):
        assert by[("superpixels", seed, "step0")]["checkpoint"] != by[("grid-cells", seed, "step0")]["checkpoint"]
        assert by[("superpixels", seed, "step0")]["J&F-Mean"] == by[("grid-cells", seed, "step0")]["J&F-Mean"]
        w = [torch.load(by[(a, seed, "step0")]["checkpoint"], weights_only=False)["model"] for a in
             ("superpixels", "grid-cells")]
        assert all(torch.equal(w[0][k], w[1][k]) for k in w[0])
        cfgs = [json.loads((Path(by[(a, seed, "p1")]["checkpoint"]).parent / "config.json").read_text())
                for a in ("superpixels", "grid-cells")]
        assert cfgs[0]["clips"] == cfgs[1]["clips"] and cfgs[0]["seed"] == cfgs[1]["seed"] == int(seed)
    comps = list(csv.DictReader(open(work / "study_comparisons.csv")))
    assert {"comparison", "primary", "difference", "low", "high"} <= set(comps[0])
    assert {c["comparison"] for c in comps} >= {"superpixels - grid-cells @ p1", "superpixels - its step 0",
                                                "superpixels - raw RGB features @ p1"}
    assert all(c["seeds"] == "2" for c in comps)
    md = (work / "study.md").read_text()
    assert "primary comparison" in md and (work / "study.png").stat().st_size > 0
    rgb = json.loads((work / "eval" / "rgb-x1" / "davis" / "metrics-val.json").read_text())["global"]["J&F-Mean"]
    assert f"raw RGB features (8x8-pooled normalised colour) score J&F {rgb:.3f}" in md
    stamp = {p: p.stat().st_mtime_ns for p in (work / "eval").rglob("metrics-val.json")}
    assert len(stamp) == 2 * 2 + 2 + 1  # 2 seeds x 2 arms, one shared step 0 per seed, raw RGB once
    assert main(args) == 0  # rerun: trainings and scores reused
    assert {p: p.stat().st_mtime_ns for p in (work / "eval").rglob("metrics-val.json")} == stamp
    outputs = {p: p.stat().st_mtime_ns for p in work.glob("study*")}
    capsys.readouterr()
    assert main([*args, "--choose"]) == 0  # the tuning's choice: printed from the scores, nothing trained or written
    out = capsys.readouterr().out
    mean = sum(float(by[("superpixels", s, "p1")]["J&F-Mean"]) for s in ("3", "4")) / 2
    assert f"superpixels: lr3e-4-cos {mean:.4f} (2 seeds) -> lr3e-4-cos" in out
    assert "wrote" not in out and {p: p.stat().st_mtime_ns for p in work.glob("study*")} == outputs


def test_verdict_says_which_models_beat_their_step_0(tmp_path, capsys):
    for name, jf in (("step0", 0.40), ("rgb", 0.2), ("superpixels", 0.45), ("patches", 0.38)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics-val.json").write_text(json.dumps({"global": {"J&F-Mean": jf}}))
    assert main(["--verdict", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [f"patches: J&F 0.380 does NOT beat its own step 0 (0.400) on {tmp_path.name}",
                   f"superpixels: J&F 0.450 beats its own step 0 (0.400) on {tmp_path.name}"]
