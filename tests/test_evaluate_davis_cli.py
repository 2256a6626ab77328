"""`evaluate davis` as one command: the year read from the root, a bad year refused before the model loads,
the J&F table at its end, `--video` pictures that `metrics` never takes for predictions, `--eval-scale`."""
import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from davis_fixtures import truncated
from spixwalk.evaluate.cli import main
from spixwalk.evaluate.davis_io import write_listing

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"real DAVIS data not found at {DATA}")
SYNTH_DAVIS = dict(n_sequences=2, n_frames=5, height=48, width=80, n_objects=2, seed=0)  # conftest.synth_davis


def metrics_json(out) -> dict:
    return json.loads((Path(out) / "metrics-val.json").read_text())


def test_davis_ends_with_jf_and_metrics_rescores_after_video(synth_davis, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["davis", "--davis", str(synth_davis), "--features", "rgb", "--out", str(out), "--video"]) == 0
    printed = capsys.readouterr()
    assert "global results for val" in printed.out and "J&F-Mean" in printed.out
    assert "DAVIS-2017 root" in printed.out  # --year left out: read from ImageSets/2017
    first = metrics_json(out)
    assert first["complete"] and first["year"] == 2017 and len(first["sequences"]) == 2
    assert (out / "synth-00" / "side-by-side" / "still.png").is_file()
    # the pictures of --video sit in their own folder: metrics scores the same frames, nothing else
    assert main(["metrics", "--davis", str(synth_davis), "--results", str(out)]) == 0
    again = metrics_json(out)
    assert again["complete"] and again["global"] == first["global"]


def test_eval_scale_reads_frames_and_masks_resized_and_says_so(synth_davis, tmp_path, capsys):
    out = tmp_path / "half"
    assert main(["davis", "--davis", str(synth_davis), "--features", "rgb", "--out", str(out),
                 "--eval-scale", "0.5"]) == 0
    assert np.asarray(Image.open(out / "synth-01" / "00002.png")).shape == (24, 40)
    res = metrics_json(out)
    assert res["complete"] and res["eval_scale"] == 0.5
    with open(out / "global_results-val.csv") as f:
        head, row = list(csv.reader(f))
    assert head[-1] == "Eval-Scale" and row[-1] == "0.5"
    # metrics takes the scale the folder was propagated at; a different one is refused per sequence
    assert main(["metrics", "--davis", str(synth_davis), "--results", str(out)]) == 0
    assert metrics_json(out)["global"] == res["global"]
    capsys.readouterr()
    assert main(["metrics", "--davis", str(synth_davis), "--results", str(out), "--eval-scale", "1"]) == 1
    assert "read at --eval-scale 1" in capsys.readouterr().err
    assert main(["davis", "--davis", str(synth_davis), "--features", "rgb", "--out", str(tmp_path / "x"),
                 "--eval-scale", "0"]) == 2


@needs_data
def test_year_read_from_a_2016_root_and_2017_refused_before_the_model(tmp_path, capsys):
    root = truncated(DATA / "davis2016-val", "car-shadow", 4, tmp_path / "d16")
    write_listing(root, 2016, "val", ["car-shadow"])
    out = tmp_path / "out"
    assert main(["davis", "--davis", str(root), "--features", "rgb", "--out", str(out)]) == 0
    assert metrics_json(out)["year"] == 2016 and metrics_json(out)["complete"]
    capsys.readouterr()
    # a checkpoint that does not exist: had the model loaded first, its error would be the one printed
    for extra in (["--sequences", "car-shadow"], []):
        assert main(["davis", "--davis", str(root), "--year", "2017", "--ckpt", str(tmp_path / "none.pth"),
                     "--out", str(tmp_path / "bad"), *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and err.startswith("error: --year 2017") and "--year 2016" in err, err
        assert not (tmp_path / "bad").exists()
    assert main(["metrics", "--davis", str(root), "--year", "2017", "--results", str(out)]) == 2


@needs_data
def test_year_read_from_masks_without_imagesets(tmp_path, capsys):
    root16 = truncated(DATA / "davis2016-val", "blackswan", 3, tmp_path / "d16")  # no ImageSets at all
    root17 = truncated(DATA / "davis2017-mini", "breakdance", 3, tmp_path / "d17")
    for root, seq, year in ((root16, "blackswan", 2016), (root17, "breakdance", 2017)):
        out = tmp_path / f"out{year}"
        assert main(["davis", "--davis", str(root), "--sequences", seq, "--features", "rgb", "--out", str(out)]) == 0
        assert metrics_json(out)["year"] == year
    capsys.readouterr()
    # indexed masks of several objects (tennis: 2) cannot be read as 2016 masks (one object reads as one)
    assert main(["davis", "--davis", str(DATA / "davis2017-mini"), "--year", "2016", "--sequences", "tennis",
                 "--features", "rgb",
                 "--out", str(tmp_path / "bad")]) == 2
    assert "pass --year 2017" in capsys.readouterr().err


@needs_data
def test_metrics_after_video_on_real_davis(tmp_path):
    """The README's `make eval-davis EXTRA="--video"`: propagation with --video, then `metrics` on its folder."""
    root = truncated(DATA / "davis2016-val", "car-shadow", 5, tmp_path / "d")
    out = tmp_path / "out"
    assert main(["davis", "--davis", str(root), "--sequences", "car-shadow", "--features", "rgb", "--out", str(out),
                 "--video", "--no-metrics"]) == 0
    assert not (out / "metrics-val.json").exists()
    assert main(["metrics", "--davis", str(root), "--results", str(out)]) == 0
    assert metrics_json(out)["complete"] and metrics_json(out)["year"] == 2016
