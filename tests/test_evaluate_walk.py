"""`evaluate walk`: the walk's loss and cycle accuracy of training checkpoints on a store they never trained on."""
import csv

import pytest
import torch

from spixwalk.evaluate.cli import main
from spixwalk.evaluate.walk_score import score, verdicts
from spixwalk.train.loop import main as train
from train_synth import make_store

FAST = ["--img-size", "64", "--batch", "2", "--workers", "0", "--threads", "1", "--lr", "1e-3", "--warmup", "0"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A 12-step superpixel run and a 1-step patch run on one store, and a held-out store of other videos."""
    tmp = tmp_path_factory.mktemp("walk")
    make_store(tmp / "train", shards=((0, 2),), n_frames=8)
    make_store(tmp / "held", shards=((7, 2),), n_frames=8)  # other seeds: other regions, colours and motions
    for name, steps, nodes in (("sp", 12, "superpixels"), ("pa", 1, "patches")):
        assert train(["--store", str(tmp / "train"), "--run", str(tmp / name), "--steps", str(steps), "--nodes", nodes,
                      "--snapshot-steps", "0", *FAST]) == 0
    return tmp


def test_step_0_and_final_scored_on_the_same_held_out_clips(runs, capsys):
    sp = runs / "sp"
    args = ["walk", "--store", str(runs / "held"), "--ckpt", str(sp / "snapshot-step0.pt"), "--ckpt",
            str(sp / "checkpoint.pt"), "--ckpt", str(runs / "pa" / "checkpoint.pt"), "--threads", "1"]
    assert main([*args, "--out", str(runs / "walk.csv")]) == 0
    out = capsys.readouterr().out
    rows = list(csv.DictReader(open(runs / "walk.csv")))
    assert [r["step"] for r in rows] == ["0", "12", "1"] and [r["nodes"] for r in rows] == ["superpixels"] * 2 + ["patches"]
    step0, final, patches = ({k: float(v) for k, v in r.items() if k in ("loss", "accuracy", "chance")} for r in rows)
    assert rows[0]["clips"] == rows[1]["clips"] == "10"  # 2 videos x 5 clips (the thesis preset)
    assert step0["chance"] == final["chance"] and 1 / 13 < step0["chance"] < 1 / 5  # 12 regions, cropped
    assert patches["chance"] == pytest.approx(1 / 49, abs=1e-4)  # CRW's 7x7 patches, scaled with the frame
    assert final["accuracy"] > step0["accuracy"] + 0.08  # 12 steps on colour regions: 0.13 -> 0.30
    assert "sp: walk accuracy on held-out clips" in out and "): learned" in out
    assert "pa:" not in out  # no step 0 of that run was given: nothing to compare
    assert main(args[:7]) == 0  # the same checkpoints, the same clips: the same figures
    again = capsys.readouterr().out.splitlines()[1:3]
    assert again == out.splitlines()[1:3]


def test_a_runs_checkpoints_share_one_decoding_of_the_clips(runs):
    sp, held, clips = runs / "sp", str(runs / "held"), {}
    shared = [score(sp / f, held, 4, clips=clips) for f in ("snapshot-step0.pt", "checkpoint.pt")]
    assert len(clips) == 1  # step 0 and the final checkpoint recorded the same options: decoded once
    score(runs / "pa" / "checkpoint.pt", held, 4, clips=clips)
    assert len(clips) == 2  # other nodes, other clips
    assert shared == [score(sp / f, held, 4) for f in ("snapshot-step0.pt", "checkpoint.pt")]


def test_verdicts_compare_each_run_with_its_own_step_0():
    rows = [{"checkpoint": "r/a/snapshot-step0.pt", "step": 0, "accuracy": 0.30, "chance": 0.04},
            {"checkpoint": "r/a/checkpoint.pt", "step": 9, "accuracy": 0.20, "chance": 0.04},
            {"checkpoint": "r/b/checkpoint.pt", "step": 9, "accuracy": 0.90, "chance": 0.04}]
    assert verdicts(rows) == ["a: walk accuracy on held-out clips 0.200 at step 9 vs 0.300 at step 0 (chance 0.040): "
                              "did NOT learn"]


@pytest.mark.parametrize("case, message", [
    ("missing", "checkpoint not found"), ("weights-only", "not a spixwalk training checkpoint"),
    ("no-labels", "label configuration"), ("clips", "--clips 0: must be at least 1")])
def test_unusable_input_one_line_exit_2(runs, tmp_path, capsys, case, message):
    ckpt, store, extra = runs / "sp" / "checkpoint.pt", runs / "held", []
    if case == "missing":
        ckpt = tmp_path / "nope.pt"
    elif case == "weights-only":
        ckpt = tmp_path / "resnet.pt"
        torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, ckpt)
    elif case == "no-labels":
        store = tmp_path / "frames-only"
        make_store(store, cfg="fh-s600-g0.5-m400", shards=((0, 1),), n_frames=8)
    else:
        extra = ["--clips", "0"]
    assert main(["walk", "--store", str(store), "--ckpt", str(ckpt), *extra]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err and "Traceback" not in err
