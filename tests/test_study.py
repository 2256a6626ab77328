"""`make study`: options checked before any work, the paired bootstrap on known answers, a tiny end-to-end
study through the real stages on generated clips, and the demo's plain verdict line."""
import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks import study_report
from benchmarks.study import main
from spixwalk.evaluate.synth import generate
from spixwalk.evaluate.davis_io import write_listing
from preprocess_fixtures import lavfi_videos

DAVIS16 = Path(__file__).resolve().parents[2] / "shared" / "data" / "davis2016-val"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    videos = root / "videos"
    lavfi_videos(videos, 2, seconds=2.0)
    names = generate(root / "davis", n_sequences=3, n_frames=5, height=64, width=96, n_objects=1)
    for png in (root / "davis" / "Annotations").rglob("*.png"):  # DAVIS-2016 masks: mode L, 255 = the object
        Image.fromarray(np.where(np.array(Image.open(png)) == 1, 255, 0).astype(np.uint8), "L").save(png)
    write_listing(root / "davis", 2016, "val", names)
    return videos, root / "davis"


def _args(tiny, work, *extra):
    videos, davis = tiny
    return ["--train-videos", str(videos), "--davis", str(davis), "--work", str(work), "--img-size", "64",
            "--batch", "2", "--threads", "1", "--jobs", "2", "--eval-scale", "1", *extra]


def test_unusable_options_exit_2_before_any_work(tiny, tmp_path, capsys):
    work = tmp_path / "w"
    for bad in (["--modes", "superpixels,nope"], ["--points", "0"], ["--budget", "-1"], ["--scored", "synth-00,zz"],
                ["--eval-scale", "2"], ["--warmup-steps", "-3"], ["--mode-budget", "patches=0"], ["--train-videos", str(tmp_path / "nowhere")]):
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


def test_bootstrap_of_a_constant_difference_is_exact():
    a = np.linspace(0.2, 0.8, 14)
    assert study_report.bootstrap_diff(a + 0.05, a) == pytest.approx((0.05, 0.05, 0.05))


def test_bootstrap_interval_matches_the_normal_theory_on_many_pairs():
    rng = np.random.default_rng(1)
    d = rng.normal(0.03, 0.1, size=400)
    mean, lo, hi = study_report.bootstrap_diff(d, np.zeros_like(d))
    half = 1.96 * d.std() / np.sqrt(d.size)
    assert mean == pytest.approx(d.mean())
    assert lo == pytest.approx(d.mean() - half, abs=0.15 * half) and hi == pytest.approx(d.mean() + half, abs=0.15 * half)


def test_bootstrap_is_paired():
    """A common per-sequence offset cancels: pairing is what makes a small difference visible."""
    rng = np.random.default_rng(2)
    base = rng.uniform(0.1, 0.9, size=14)
    mean, lo, hi = study_report.bootstrap_diff(base + 0.02 + rng.normal(0, 0.002, 14), base)
    assert lo > 0.015 and hi < 0.025 and mean == pytest.approx(0.02, abs=0.002)


def test_tiny_study_end_to_end_and_rerun_reuses(tiny, tmp_path):
    work = tmp_path / "w"
    args = _args(tiny, work, "--modes", "superpixels,patches", "--points", "2", "--budget", "3")
    assert main(args) == 0
    rows = list(csv.DictReader(open(work / "study.csv")))
    assert {"method", "nodes", "seconds", "steps", "clips_seen", "J&F-Mean", "J-Mean", "F-Mean"} <= set(rows[0])
    by = {(r["nodes"], r["point"]): r for r in rows}
    for mode in ("superpixels", "patches"):
        assert by[(mode, "step0")]["steps"] == "0"
        assert {p for n, p in by if n == mode} >= {"step0", "t1.5", "t3"}
        assert float(by[(mode, "t3")]["seconds"]) >= 3 and int(by[(mode, "t3")]["steps"]) > 0
    # both modes start from the same weights: one evaluation, the same score
    assert by[("superpixels", "step0")]["J&F-Mean"] == by[("patches", "step0")]["J&F-Mean"]
    clips = [p for n, p in by if n == "superpixels" and p.startswith("clips-")]
    assert clips == [f"clips-{int(by[('patches', 't3')]['steps']) * 2}"]
    per_seq = list(csv.DictReader(open(work / "study_per_sequence.csv")))
    assert len(per_seq) == 3 * len(rows) and "J&F" in per_seq[0]
    comps = {r["comparison"] for r in csv.DictReader(open(work / "study_comparisons.csv"))}
    assert {"superpixels - patches, equal seconds", "superpixels - patches, equal clips seen",
            "superpixels: trained - own step 0", "patches: trained - own step 0"} <= comps
    assert (work / "study.png").stat().st_size > 0 and "equal training time" in (work / "study.md").read_text()
    evals = sorted(p.name for p in (work / "eval").iterdir())
    stamp = {p: (work / "eval" / p / "metrics-val.json").stat().st_mtime_ns for p in evals}
    assert main(args) == 0  # rerun: trainings and scores reused
    assert {p: (work / "eval" / p / "metrics-val.json").stat().st_mtime_ns for p in evals} == stamp


def test_verdict_says_which_models_beat_their_step_0(tmp_path, capsys):
    for name, jf in (("step0", 0.40), ("rgb", 0.2), ("superpixels", 0.45), ("patches", 0.38)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics-val.json").write_text(json.dumps({"global": {"J&F-Mean": jf}}))
    assert main(["--verdict", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [f"patches: J&F 0.380 does NOT beat its own step 0 (0.400) on {tmp_path.name}",
                   f"superpixels: J&F 0.450 beats its own step 0 (0.400) on {tmp_path.name}"]
