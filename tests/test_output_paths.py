"""Output and input paths that cannot work are refused before any work: exit 2, one line naming the option."""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(*args):
    return subprocess.run([sys.executable, "-m", *map(str, args)], cwd=REPO, capture_output=True, text=True)


def one_line(res) -> str:
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1 and "Traceback" not in res.stderr, (res.returncode, res.stderr)
    return lines[0]


def test_out_under_a_regular_file_exits_2_naming_it(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("")
    out = afile / "sub" / "x"
    commands = {
        "preprocess show": ["preprocess", "show", "--store", tmp_path / "s", "--video", "v", "--out", out],
        "train export": ["train", "export", "--run", tmp_path / "r", "--out", out],
        "data_manifest build": ["data_manifest", "build", "--videos", tmp_path, "--out", out],
        "evaluate davis": ["evaluate", "davis", "--davis", tmp_path / "d", "--init", "random", "--out", out],
    }
    for name, args in commands.items():
        line = one_line(run(*args))
        assert f"--out {out}: {afile} is a file, not a folder" in line, (name, line)
    assert list(tmp_path.iterdir()) == [afile]  # nothing created


def test_ckpt_naming_a_folder_says_so(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "checkpoint.pt").write_bytes(b"")
    from spixwalk.evaluate.synth import generate

    generate(tmp_path / "d", n_sequences=1, n_frames=3, height=32, width=32, n_objects=1)  # a root that passes
    line = one_line(run("evaluate", "davis", "--davis", tmp_path / "d", "--out", tmp_path / "o", "--ckpt", run_dir))
    assert f"{run_dir}: a folder, not a checkpoint file; its checkpoint is {run_dir / 'checkpoint.pt'}" in line
    assert not (tmp_path / "o").exists()


def test_init_from_naming_a_folder_says_so(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "checkpoint.pt").write_bytes(b"")
    line = one_line(run("train", "--store", tmp_path / "s", "--run", tmp_path / "r", "--init-from", run_dir))
    assert f"--init-from {run_dir}: a folder, not a weights file; its checkpoint is {run_dir / 'checkpoint.pt'}" in line
    assert not (tmp_path / "r").exists()


def test_store_that_cannot_be_created_exits_2_with_one_line(tmp_path):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"id": "a", "path": "/nonexistent.mp4", "shard": 0}\n')
    line = one_line(run("preprocess", "--manifest", manifest, "--store", "/proc/spixwalk-x/s"))
    assert line.startswith("error: --store /proc/spixwalk-x/s: cannot be written")
