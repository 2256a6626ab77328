"""`make study` / the demo's verdict: unusable options fail before any work; the verdict line is plain."""
import json
from pathlib import Path

import pytest

from benchmarks.study import main

DAVIS16 = Path(__file__).resolve().parents[2] / "shared" / "data" / "davis2016-val"


def test_unusable_options_exit_2_before_any_work(tmp_path, capsys):
    work = tmp_path / "w"
    assert main(["--davis", str(tmp_path / "nowhere"), "--work", str(work)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nowhere" in err[0] and not work.exists()


@pytest.mark.skipif(not DAVIS16.is_dir(), reason="../shared/data/davis2016-val absent")
def test_scored_sequences_must_exist_and_leave_some_to_train(tmp_path, capsys):
    work = tmp_path / "w"
    assert main(["--davis", str(DAVIS16), "--work", str(work), "--scored", "blackswan,nope"]) == 2
    assert "nope" in capsys.readouterr().err and not work.exists()
    every = ",".join(sorted(p.name for p in (DAVIS16 / "JPEGImages" / "480p").iterdir()))
    assert main(["--davis", str(DAVIS16), "--work", str(work), "--scored", every]) == 2
    assert "no sequence left" in capsys.readouterr().err


def test_verdict_says_which_models_beat_random_init(tmp_path, capsys):
    for name, jf in (("random", 0.40), ("rgb", 0.2), ("superpixels", 0.45), ("patches", 0.38)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics-val.json").write_text(json.dumps({"global": {"J&F-Mean": jf}}))
    assert main(["--verdict", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [f"patches: J&F 0.380 does NOT beat the random-init encoder (0.400) on {tmp_path.name}",
                   f"superpixels: J&F 0.450 beats the random-init encoder (0.400) on {tmp_path.name}"]
