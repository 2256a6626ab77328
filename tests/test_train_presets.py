"""Presets, option validation, windowed logging, finished reruns, CPU budgets and preemption, on real stores."""
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from spixwalk.preprocess.store import StoreReader
from spixwalk.train.data import clip_index, clip_start
from spixwalk.train.loop import PREEMPTED, main
from spixwalk.train.options import parse_args
from spixwalk.train.model import patch_boxes
from spixwalk.train.weights import load_encoder
from spixwalk.train.presets import CRW

REPO = Path(__file__).resolve().parents[1]
FAST = ["--img-size", "64", "--batch", "2", "--workers", "0", "--threads", "1"]


STORE = dict(shards=((0, 2),), n_frames=10, size=64)  # the shared `store` fixture (conftest.py) of this module


def test_crw_preset_sets_every_choice_and_explicit_options_win():
    a = parse_args(["--store", "s", "--run", "r", "--preset", "crw"])
    assert {k: getattr(a, k) for k in CRW} == CRW
    b = parse_args(["--store", "s", "--run", "r", "--preset", "crw", "--padding", "zeros", "--cycles", "all"])
    assert (b.padding, b.cycles, b.nodes, b.norm) == ("zeros", "all", "patches", "cifar")
    t = parse_args(["--store", "s", "--run", "r"])  # default preset: thesis = crw + superpixels + summed cycles
    assert (t.preset, t.nodes, t.cycles, t.padding, t.edge_drop_mode) == \
        ("thesis", "superpixels", "all", "reflect", "crw")


def test_crw_run_records_its_preset_logs_windows_and_keeps_a_finished_summary(store, tmp_path):
    run = tmp_path / "crw"
    args = ["--store", str(store), "--run", str(run), "--preset", "crw", "--steps", "4", "--log-every", "2", *FAST]
    assert main(args) == 0
    cfg = json.loads((run / "config.json").read_text())
    assert {k: cfg[k] for k in CRW if k != "clip_len"} == {k: v for k, v in CRW.items() if k != "clip_len"}
    assert cfg["clips"] == 2 * 5  # two 10-frame videos, 5 drawn clips each
    rows = [json.loads(l) for l in (run / "log.jsonl").read_text().splitlines()]
    # the run's first step has a row of its own (the summary's first_loss), then every --log-every steps
    assert [(r["step"], r["steps_in_row"]) for r in rows] == [(1, 1), (2, 1), (4, 2)]
    assert rows[-1]["lr"] == pytest.approx(CRW["lr"] * CRW["lr_gamma"])  # step 4 is past 80% of 4 steps
    assert set(rows[0]) >= {"loss", "xent_2", "xent_3", "acc_3"} and "xent_1" not in rows[0]
    enc = load_encoder(str(run / "checkpoint.pt"))
    assert enc.conv1.padding_mode == "reflect"
    before = (run / "summary.json").read_bytes()
    assert main(args) == 0  # rerun of a finished run: nothing trained, nothing rewritten
    assert (run / "summary.json").read_bytes() == before


def test_bad_options_exit_2_before_any_work(store, tmp_path, capsys):
    for bad in (["--frame-transforms", "crop,zoom"], ["--edge-drop", "1.5"], ["--log-every", "0"],
                ["--preset", "crw", "--clip-len", "2"], ["--snapshot-cpu", "10,x"]):
        run = tmp_path / "never"
        capsys.readouterr()
        assert main(["--store", str(store), "--run", str(run), *FAST, *bad]) == 2, bad
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and bad[-2].lstrip("-").split("-")[0] in err[0], (bad, err)
        assert not run.exists()


def test_cpu_budget_stops_as_finished_with_snapshots(store, tmp_path):
    run = tmp_path / "budget"
    assert main(["--store", str(store), "--run", str(run), "--steps", "1000", "--log-every", "1",
                 "--cpu-budget", "0.5", "--snapshot-cpu", "0.01", "--snapshot-steps", "0,2", "--lr-schedule",
                 "cosine", "--warmup", "0", *FAST]) == 0
    s = json.loads((run / "summary.json").read_text())
    lrs = [json.loads(x)["lr"] for x in (run / "log.jsonl").read_text().splitlines() if '"lr"' in x]
    assert lrs and all(x > y for x, y in zip(lrs, lrs[1:])) and lrs[-1] >= 0  # a cosine over the CPU budget
    assert s["stopped_by"] == "cpu_budget" and s["steps"] < 1000 and s["train_cpu_seconds_total"] >= 0.5
    assert (run / "snapshot-cpu0.01.pt").exists()
    assert torch.load(run / "checkpoint.pt", weights_only=False)["step"] == s["steps"]
    if s["steps"] >= 2:
        assert torch.load(run / "snapshot-step2.pt", weights_only=False)["step"] == 2


def test_step0_snapshot_holds_the_initial_weights_of_every_node_mode(store, tmp_path):
    """The study's baseline: each mode's own step 0 is the same network (same seed), before any update."""
    states = {}
    for nodes in ("superpixels", "patches"):
        run = tmp_path / nodes
        assert main(["--store", str(store), "--run", str(run), "--steps", "1", "--nodes", nodes,
                     "--snapshot-steps", "0", *FAST]) == 0
        snap = torch.load(run / "snapshot-step0.pt", weights_only=False)
        assert snap["step"] == 0
        states[nodes] = snap["model"]
        trained = torch.load(run / "checkpoint.pt", weights_only=False)["model"]
        assert not torch.equal(trained["encoder.conv1.weight"], snap["model"]["encoder.conv1.weight"])
    a, b = states.values()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_warmup_is_linear_then_constant_until_the_drop():
    from types import SimpleNamespace

    from spixwalk.train.loop import lr_factor
    f = lr_factor(SimpleNamespace(warmup=4, lr_drop_at=0.5, lr_gamma=0.3, lr_schedule="drop"), steps=20)
    assert [round(f(s), 6) for s in (0, 1, 2, 3, 4, 9, 10, 19)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 0.3, 0.3]
    g = lr_factor(SimpleNamespace(warmup=0, lr_drop_at=0.0, lr_gamma=0.3, lr_schedule="drop"), steps=20)
    assert {g(s) for s in range(20)} == {1.0}


def test_cosine_schedule_follows_the_budget_spent_else_the_steps():
    from types import SimpleNamespace

    from spixwalk.train.loop import lr_factor
    spent = [0.0]
    a = SimpleNamespace(warmup=2, lr_drop_at=0.8, lr_gamma=0.3, lr_schedule="cosine", budget=100.0)
    f = lr_factor(a, steps=10 ** 8, budget_spent=lambda s: spent[0])
    assert f(0) == 0.5  # warm-up still applies: 0.5 x cos(0)
    values = []
    for sec in (0.0, 25.0, 50.0, 75.0, 100.0, 150.0):
        spent[0] = sec
        values.append(round(f(1000), 6))  # the step count plays no part under a budget (no drop at 80%)
    assert values == [1.0, 0.853553, 0.5, 0.146447, 0.0, 0.0]
    g = lr_factor(SimpleNamespace(warmup=0, lr_drop_at=0.0, lr_gamma=0.3, lr_schedule="cosine", budget=0), steps=20)
    assert [round(g(s), 6) for s in (0, 10, 20)] == [1.0, 0.5, 0.0]


def test_budget_cosine_moves_every_step_between_log_rows():
    """The clock is read at log rows only; between them the seconds spent are extrapolated at the last
    window's seconds per step, so the lr falls step by step instead of in stairs of --log-every steps."""
    from types import SimpleNamespace

    from spixwalk.train.schedule import BudgetSpent, lr_factor
    spent = BudgetSpent()
    spent.row(30.0, 10)  # a resumed run: 10 steps in 30 s so far
    assert [spent(s) for s in (10, 12, 15)] == [30.0, 36.0, 45.0]
    spent.row(40.0, 15)  # a row: 2 s per step since the last one
    assert [spent(s) for s in (15, 16, 20)] == [40.0, 42.0, 50.0]
    assert spent(14) == 40.0  # never before the row's own figure
    a = SimpleNamespace(warmup=0, lr_drop_at=0.0, lr_gamma=0.3, lr_schedule="cosine", budget=80.0)
    f = lr_factor(a, steps=10 ** 8, budget_spent=spent)
    lrs = [f(s) for s in range(15, 36)]
    assert all(x > y for x, y in zip(lrs, lrs[1:-1])) and lrs[-1] == 0.0  # 40 s + 20 steps x 2 s = the budget


def test_sigterm_saves_a_checkpoint_and_the_rerun_resumes(store, tmp_path):
    run = tmp_path / "pre"
    cmd = [sys.executable, "-m", "train", "--store", str(store), "--run", str(run), "--log-every", "1", *FAST]
    p = subprocess.Popen(cmd + ["--steps", "1000"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    log = run / "log.jsonl"
    deadline = time.time() + 120
    while p.poll() is None and time.time() < deadline and not (log.exists() and log.read_text().count("\n") >= 2):
        time.sleep(0.2)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=120)
    assert p.returncode == PREEMPTED, err[-2000:]
    assert "rerun the same command" in err and not (run / "summary.json").exists()
    step = torch.load(run / "checkpoint.pt", weights_only=False)["step"]
    assert 2 <= step < 1000
    r = subprocess.run(cmd + ["--steps", str(step + 1)], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((run / "summary.json").read_text())["steps"] == step + 1


def test_clips_per_video_draws_distinct_starts_per_epoch(store):
    refs = StoreReader(store).videos()
    clips, _ = clip_index(refs, 4, 4, per_video=5)
    assert len(clips) == 10 and all(t0 < 0 for _, t0 in clips)
    ref = refs[0]
    e0 = [clip_start(ref, t0, 4, 0, 0) for r, t0 in clips if r == ref]
    e1 = [clip_start(ref, t0, 4, 0, 1) for r, t0 in clips if r == ref]
    assert len(set(e0)) == 5 and all(0 <= t <= 6 for t in e0) and e0 != e1


def test_crw_patch_jitter_redraws_instead_of_clamping():
    torch.manual_seed(0)
    full = {}
    for mode in ("crw", "clamp"):
        b = torch.stack(patch_boxes(200, 256, 64, 32, jitter=mode))
        w, h = b[..., 2] - b[..., 0], b[..., 3] - b[..., 1]
        assert (w <= 64 + 1e-4).all() and (h <= 64 + 1e-4).all()
        full[mode] = ((w > 64 - 1e-4) | (h > 64 - 1e-4)).float().mean().item()
    assert full["crw"] < 0.02 < 0.15 < full["clamp"], full
