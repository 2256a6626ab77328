"""spixwalk.progress: a bar on a terminal, one line per 10% elsewhere, nothing with SPIXWALK_PROGRESS=off,
always on stderr."""
import io

import pytest

from spixwalk import progress
from spixwalk.progress import Progress, track


@pytest.fixture(autouse=True)
def auto_mode(monkeypatch):
    monkeypatch.delenv("SPIXWALK_PROGRESS", raising=False)


def test_lines_when_not_a_tty(capsys):
    with Progress(40, "frames", unit="frame") as p:
        for _ in range(40):
            p.update()
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 11  # the start, then one per 10%
    assert lines[0].startswith("frames: 0/40 frame (0%)")
    assert lines[5].startswith("frames: 20/40 frame (50%)") and "ETA" in lines[5]
    assert lines[-1].startswith("frames: 40/40 frame (100%)") and "ETA" not in lines[-1]


def test_stopping_short_still_ends_with_a_line(capsys):
    with Progress(100, "steps") as p:
        p.update(5)
        p.note(loss="0.123")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and lines[-1].startswith("steps: 5/100 it (5%)") and lines[-1].endswith("loss=0.123")


def test_initial_and_set():
    f = io.StringIO()
    p = Progress(10, "train", initial=4, file=f)
    p.set(7)
    p.close()
    lines = f.getvalue().splitlines()
    assert [ln.split(",")[0] for ln in lines] == ["train: 4/10 it (40%)", "train: 7/10 it (70%)"]


def test_off_and_disabled_print_nothing(monkeypatch, capsys):
    assert list(track(range(5), desc="x", enabled=False)) == [0, 1, 2, 3, 4]
    monkeypatch.setenv("SPIXWALK_PROGRESS", "off")
    assert list(track(range(5), desc="x")) == [0, 1, 2, 3, 4]
    assert capsys.readouterr() == ("", "")


def test_bar_mode_draws_tqdm():
    f = io.StringIO()
    f.isatty = lambda: True
    assert progress.mode(file=f) == "bar"
    with Progress(3, "propagate", unit="frame", file=f) as p:
        p.update(3)
    assert "propagate" in f.getvalue() and "3/3" in f.getvalue() and "\r" in f.getvalue()


def test_unknown_total(capsys):
    assert list(track(iter("abc"), desc="videos")) == ["a", "b", "c"]
    assert capsys.readouterr().err.splitlines()[-1].startswith("videos: 3 it")


STORE = dict(shards=((0, 2), (1, 1)), n_frames=12, size=64)  # conftest.store
TRAIN = ["--nodes", "superpixels", "--img-size", "64", "--batch", "2", "--workers", "0", "--threads", "1",
         "--steps", "10", "--log-every", "5", "--ckpt-every", "100"]


def test_train_bar_moves_every_step_loss_only_at_log_rows(store, tmp_path, capsys, monkeypatch):
    import json

    import torch

    from spixwalk.train.loop import main

    monkeypatch.setenv("SPIXWALK_PROGRESS", "off")
    assert main(["--store", str(store), "--run", str(tmp_path / "quiet"), *TRAIN]) == 0
    assert "train:" not in capsys.readouterr().err
    monkeypatch.setenv("SPIXWALK_PROGRESS", "lines")
    assert main(["--store", str(store), "--run", str(tmp_path / "shown"), *TRAIN]) == 0
    out, err = capsys.readouterr()
    lines = [ln for ln in err.splitlines() if ln.startswith("train:")]
    assert "train:" not in out
    assert [ln.split(",")[0] for ln in lines] == [f"train: {n}/10 step ({10 * n}%)" for n in range(11)]
    assert all("clips/s=" in ln for ln in lines[1:])
    # the loss is read at log rows (steps 1, 5 and 10), never per step: steps 2-4 show step 1's
    assert all("loss=" in ln for ln in lines[1:]) and len({ln.split("loss=")[1] for ln in lines[1:5]}) == 1
    rows = {r: [json.loads(x) for x in (tmp_path / r / "log.jsonl").read_text().splitlines()] for r in ("quiet", "shown")}
    assert [r["loss"] for r in rows["shown"]] == [r["loss"] for r in rows["quiet"]]
    assert f"loss={rows['shown'][-1]['loss']:.3f}" in lines[-1]
    a, b = (torch.load(tmp_path / r / "checkpoint.pt", weights_only=False)["model"] for r in ("quiet", "shown"))
    assert all(torch.equal(a[k], b[k]) for k in a)
