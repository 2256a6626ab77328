"""Evaluation progress counts frames on stderr and changes nothing the stages write."""
import json

import pytest

from spixwalk.evaluate.cli import main

SYNTH_DAVIS = dict(n_sequences=2, n_frames=5, height=64, width=112, n_objects=2, seed=0)  # conftest.synth_davis


def run(davis, out, capsys):
    assert main(["davis", "--davis", str(davis), "--init", "random", "--out", str(out)]) == 0
    prop = capsys.readouterr()
    assert main(["metrics", "--davis", str(davis), "--results", str(out)]) == 0
    return prop, capsys.readouterr()


def outputs(out) -> dict:
    """Every file evaluation writes, bytes, except the timings of propagation.json."""
    files = {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    files.pop("config.json")  # holds the output folder's path
    prop = json.loads(files.pop("propagation.json"))
    files["propagation"] = [(s["sequence"], s["frames"], s["objects"]) for s in prop["sequences"]]
    m = json.loads(files.pop("metrics-val.json"))
    files["metrics"] = (m["global"], m["per_object"])
    return files


def test_frames_counted_on_stderr_outputs_unchanged(synth_davis, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SPIXWALK_PROGRESS", "off")
    quiet = run(synth_davis, tmp_path / "quiet", capsys)
    assert "propagate:" not in quiet[0].err + quiet[1].err
    monkeypatch.setenv("SPIXWALK_PROGRESS", "lines")
    prop, met = run(synth_davis, tmp_path / "shown", capsys)
    lines = prop.err.splitlines()
    assert lines[0].startswith("propagate: 0/10 frame (0%)")
    # 10 frames: a line per frame crosses each 10% step, so every count appears, with the sequence it is in
    assert [ln.split(",")[0] for ln in lines if ln.startswith("propagate:")] == [
        f"propagate: {n}/10 frame ({10 * n}%)" for n in range(11)]
    assert any("sequence=synth-01" in ln for ln in lines)
    assert "propagate:" not in prop.out and "metrics:" not in met.out
    assert [ln.split(",")[0] for ln in met.err.splitlines() if ln.startswith("metrics:")][-1] == \
        "metrics: 6/6 frame (100%)"  # 2 sequences x (5 frames - first - last)
    assert outputs(tmp_path / "shown") == outputs(tmp_path / "quiet")
    assert met.out.replace("shown", "quiet") == quiet[1].out.replace("shown", "quiet")


@pytest.mark.parametrize("jobs", [2])
def test_metrics_in_processes_count_whole_sequences(synth_davis, tmp_path, capsys, monkeypatch, jobs):
    assert main(["davis", "--davis", str(synth_davis), "--init", "random", "--out", str(tmp_path), "--no-overlays"]) == 0
    monkeypatch.setenv("SPIXWALK_PROGRESS", "lines")
    capsys.readouterr()
    assert main(["metrics", "--davis", str(synth_davis), "--results", str(tmp_path), "--jobs", str(jobs)]) == 0
    counts = [ln.split(",")[0] for ln in capsys.readouterr().err.splitlines() if ln.startswith("metrics:")]
    assert counts == ["metrics: 0/6 frame (0%)", "metrics: 3/6 frame (50%)", "metrics: 6/6 frame (100%)"]
