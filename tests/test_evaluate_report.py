import json

from spixwalk.evaluate import report
from spixwalk.evaluate.cli import main


def _run(tmp_path, name, nodes, step_s, loss):
    run = tmp_path / "runs" / name
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"nodes": nodes, "label_configs": ["slic-n30-c30"], "img_size": 128,
                                                  "batch": 4, "steps_per_epoch": 10}))
    (run / "summary.json").write_text(json.dumps({"nodes": nodes, "train_seconds_total": 12.0, "clips_per_s": 2.5,
                                                   "batch": 4, "steps": 3, "final_loss": loss}))
    (run / "log.jsonl").write_text("".join(json.dumps({"step": i, "loss": loss + 3 - i, "seconds": s}) + "\n"
                                           for i, s in enumerate([9.0] + [step_s] * 3)))
    return run


def _metrics(root, name, jf):
    d = root / name
    d.mkdir(parents=True)
    g = {"J&F-Mean": jf, "J-Mean": jf + 0.01, "J-Recall": 0.5, "J-Decay": 0.0, "F-Mean": jf - 0.01,
         "F-Recall": 0.4, "F-Decay": 0.0}
    (d / "metrics-val.json").write_text(json.dumps({"global": g, "davis": "synthetic"}))


def test_tables_read_what_the_stages_wrote(tmp_path):
    sp = _run(tmp_path, "superpixels", "superpixels", 0.5, 4.0)
    pa = _run(tmp_path, "patches", "patches", 2.0, 5.0)
    ev = tmp_path / "eval"
    _metrics(ev, "rgb", 0.30)
    _metrics(ev, "superpixels", 0.55)  # patches not evaluated: its scores show as '-'
    rows = report.method_rows([sp, pa], ev)
    assert [r["method"] for r in rows] == ["raw RGB features", "superpixels (superpixels)", "patches (patches)"]
    assert rows[1]["J&F-Mean"] == 0.55 and rows[2]["J&F-Mean"] is None and rows[1]["train_s"] == 12.0
    table = report.scores_table(rows)
    assert table[2][1] == "0.550" and table[3][1] == "-"
    timing = report.timing_table([sp, pa])
    # the first (warm-up) step is left out of s/step; s/epoch = s/step x steps/epoch
    assert timing[1][5:8] == ["0.50", "10", "5.0"] and timing[2][5:8] == ["2.00", "10", "20.0"]


def test_report_writes_markdown_and_figures(tmp_path, capsys):
    sp = _run(tmp_path, "superpixels", "superpixels", 0.5, 4.0)
    ev = tmp_path / "eval"
    _metrics(ev, "random", 0.4)
    _metrics(ev, "superpixels", 0.5)
    out = tmp_path / "report"
    assert main(["report", "--runs", str(sp), "--eval-root", str(ev), "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    assert "| random-init encoder | 0.400 |" in md and "| superpixels (superpixels) | 0.500 |" in md
    assert (out / "loss-overlay.png").stat().st_size > 1000
    assert "random-init encoder" in capsys.readouterr().out


SYNTH_DAVIS = dict(n_sequences=2, n_frames=4, height=48, width=80, n_objects=2, seed=0)  # conftest.synth_davis


def test_report_embeds_the_video_still(synth_davis, tmp_path):
    import numpy as np
    from PIL import Image

    sp = _run(tmp_path, "superpixels", "superpixels", 0.5, 4.0)
    ev = tmp_path / "eval"
    assert main(["davis", "--davis", str(synth_davis), "--features", "rgb", "--out", str(ev / "rgb"), "--video"]) == 0
    assert main(["davis", "--davis", str(synth_davis), "--init", "random", "--out", str(ev / "superpixels"),
                 "--sequences", "synth-01", "--video"]) == 0
    out = tmp_path / "report"
    assert main(["report", "--runs", str(sp), "--eval-root", str(ev), "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    assert "## Ground truth | prediction" in md
    # the sequence both evaluations have, its still copied unchanged, the mp4 linked where it lies
    for name, folder in (("raw RGB features", "rgb"), ("superpixels", "superpixels")):
        still = f"side-by-side-{name.replace(' ', '-')}.png"
        assert f"![{name}: synth-01]({still})" in md
        assert np.array_equal(np.asarray(Image.open(out / still)),
                              np.asarray(Image.open(ev / folder / "synth-01" / "side-by-side" / "still.png")))
        assert f"([mp4](../eval/{folder}/synth-01/side-by-side/video.mp4))" in md
    # the table says how many sequences each evaluation scored, of how many its set lists
    assert "| 2/2 |" in md and "| 1/2 |" in md and "rows on different numbers of sequences" in md


def test_report_says_how_many_sequences_were_scored(tmp_path):
    ev = tmp_path / "eval"
    for name in ("rgb", "random"):
        _metrics(ev, name, 0.5)
        m = json.loads((ev / name / "metrics-val.json").read_text())
        m.update(davis="davis2016-val", sequences=["bmx-trees", "car-shadow"], listed=14, eval_scale=0.5)
        (ev / name / "metrics-val.json").write_text(json.dumps(m))
    line = report.scored_line(report.method_rows([], ev))
    assert line == "on `davis2016-val`, 2 of its 14 listed sequences, frames and masks resized by 0.5"
