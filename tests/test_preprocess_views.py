"""Looking at a store: `preprocess status --videos` lists its videos with their frames and complete label
configurations; `preprocess export` says in one line that h5py (the `h5` extra) is missing."""
import json
import subprocess
import sys
from pathlib import Path

from spixwalk.preprocess.cli import main
from spixwalk.preprocess.store import write_labels
from train_synth import make_store

REPO = Path(__file__).resolve().parents[1]


def test_status_lists_videos_with_their_complete_configs(tmp_path, capsys):
    videos = make_store(tmp_path, shards=((0, 2), (1, 1)), n_frames=6, size=32)
    # a second configuration on shard 1 only: complete for s1v0 alone
    write_labels(tmp_path, 1, "fh-s600-g0.5-m400", [videos["s1v0"][1]], {"alg": "fh"}, [])
    assert main(["status", "--store", str(tmp_path), "--videos", "--json", str(tmp_path / "v.json")]) == 0
    out = capsys.readouterr().out
    rows = json.loads((tmp_path / "v.json").read_text())
    assert [(r["shard"], r["video"], r["frames"]) for r in rows] == [(0, "s0v0", 6), (0, "s0v1", 6), (1, "s1v0", 6)]
    assert rows[0]["configs"] == ["slic-n30-c30"] and rows[2]["configs"] == ["fh-s600-g0.5-m400", "slic-n30-c30"]
    assert "s1v0" in out and "fh-s600-g0.5-m400, slic-n30-c30" in out and "3 videos, 18 frames" in out


def test_export_without_h5py_is_one_line_naming_the_extra(tmp_path):
    make_store(tmp_path / "st", n_frames=4, size=32)
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "h5py.py").write_text("raise ImportError('h5py blocked for this test')\n")
    env = {"PYTHONPATH": f"{blocker}:{REPO}", "PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, "-m", "preprocess", "export", "--store", str(tmp_path / "st"), "--shard", "0",
                        "--out", str(tmp_path / "s.h5")], cwd=REPO, env=env, capture_output=True, text=True)
    assert r.returncode == 2 and not (tmp_path / "s.h5").exists()
    assert r.stderr.strip().count("\n") == 0 and "pip install 'spixwalk[h5]'" in r.stderr, r.stderr
