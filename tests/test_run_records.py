"""Run records that tell the truth and travel: absolute paths, --config from anywhere, scoring what was
propagated, log.csv as the run goes, the manifest's config and summary."""
import csv
import json
import subprocess
from pathlib import Path

from spixwalk.data_manifest.cli import main as manifest_main
from spixwalk.evaluate.cli import main as eval_main
from spixwalk.train.log import RunLog
from spixwalk.train.loop import main as train_main
from train_synth import make_store

REPO = Path(__file__).resolve().parents[1]


def csv_rows(run):
    with open(run / "log.csv") as f:
        return list(csv.DictReader(f))


def test_log_csv_grows_with_log_jsonl(tmp_path):
    log = RunLog(tmp_path)
    log.write({"step": 1, "loss": 2.0})
    assert [r["loss"] for r in csv_rows(tmp_path)] == ["2.0"]
    log.write({"step": 2, "loss": 1.5})
    log.write({"step": 3, "loss": 1.0, "cpu_seconds": 4.0})  # a new column: header rewritten
    rows = csv_rows(tmp_path)
    assert [r["step"] for r in rows] == ["1", "2", "3"] and rows[2]["cpu_seconds"] == "4.0" and rows[0]["cpu_seconds"] == ""
    RunLog(tmp_path, keep_until=2)  # resuming from step 2 drops step 3 from both files
    assert [r["step"] for r in csv_rows(tmp_path)] == ["1", "2"]


def test_train_config_has_absolute_paths_and_reruns_from_elsewhere(tmp_path, monkeypatch):
    make_store(tmp_path / "store", shards=((0, 1),), n_frames=6, size=64)
    monkeypatch.chdir(tmp_path)
    fast = ["--img-size", "64", "--batch", "2", "--workers", "0", "--threads", "1", "--nodes", "superpixels"]
    assert train_main(["--store", "store", "--run", "runs/a", "--steps", "1", *fast]) == 0
    cfg = json.loads((tmp_path / "runs/a/config.json").read_text())
    assert cfg["store"] == str(tmp_path / "store") and cfg["run"] == str(tmp_path / "runs/a")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert train_main(["--config", "../runs/a/config.json", "--run", "../runs/b"]) == 0
    assert json.loads((tmp_path / "runs/b/config.json").read_text())["store"] == str(tmp_path / "store")


SYNTH_DAVIS = dict(n_sequences=2, n_frames=3, height=48, width=64, n_objects=1, seed=2)  # conftest.synth_davis


def names(root):
    return sorted(p.name for p in (root / "JPEGImages" / "480p").iterdir())


def test_metrics_scores_what_was_propagated(synth_davis, tmp_path, monkeypatch, capsys):
    one = names(synth_davis)[0]
    monkeypatch.chdir(tmp_path)
    assert eval_main(["davis", "--davis", str(synth_davis), "--features", "rgb", "--out", "res", "--sequences", one,
                      "--no-overlays"]) == 0
    cfg = json.loads((tmp_path / "res/config.json").read_text())
    assert cfg["out"] == str(tmp_path / "res") and cfg["davis"] == str(synth_davis) and cfg["padding"] is None
    assert eval_main(["metrics", "--davis", str(synth_davis), "--results", "res"]) == 0
    res = json.loads((tmp_path / "res/metrics-val.json").read_text())
    assert res["sequences"] == [one] and res["complete"]
    assert eval_main(["metrics", "--davis", str(synth_davis), "--results", "res", "--all-sequences"]) == 1


def test_unknown_sequences_exit_2(synth_davis, tmp_path, capsys):
    assert eval_main(["davis", "--davis", str(synth_davis), "--features", "rgb", "--out", str(tmp_path / "o"),
                      "--sequences", "nope"]) == 2
    assert "unknown sequence(s) nope" in capsys.readouterr().err
    assert eval_main(["metrics", "--davis", str(synth_davis), "--results", str(tmp_path), "--sequences", "nope"]) == 2


def test_make_eval_davis_passes_sequences_to_the_evaluation():
    out = subprocess.run(["make", "-n", "-s", "eval-davis", "SEQUENCES=car-shadow", "DAVIS=/d", "CKPT=rgb",
                          "STAMP=Makefile"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    lines = [l for l in out.splitlines() if "-m evaluate" in l]
    assert len(lines) == 1 and "--sequences car-shadow" in lines[0], out  # one command: propagation, then J&F


def test_manifest_writes_its_config_and_a_summary_table(tmp_path, capsys, monkeypatch):
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "a.mp4").write_bytes(b"x" * 10)
    monkeypatch.chdir(tmp_path)
    assert manifest_main(["build", "--videos", "v", "--out", "m.jsonl"]) == 0
    cfg = json.loads((tmp_path / "m.config.json").read_text())
    assert cfg["videos"] == str(tmp_path / "v") and cfg["out"] == str(tmp_path / "m.jsonl")
    head, row = capsys.readouterr().out.splitlines()[:2]
    assert head.split()[:5] == ["videos", "new", "moved", "gone", "shards"] and row.split()[:2] == ["1", "1"]
