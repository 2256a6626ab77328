"""Around a run: kept checkpoints, warm starts, the exported encoder, --config reruns, TensorBoard and W&B."""
import json
from pathlib import Path

import pytest
import torch
import torchvision

from spixwalk.train.weights import load_encoder, resnet_state
from spixwalk.train.export import main as export_main
from spixwalk.train.loop import main

FAST = ["--img-size", "64", "--batch", "2", "--workers", "0", "--threads", "1", "--nodes", "superpixels"]


STORE = dict(shards=((0, 2),), n_frames=8, size=64)  # the shared `store` fixture (conftest.py) of this module


@pytest.fixture(scope="module")
def run4(store, tmp_path_factory):
    """4 steps, a checkpoint every step, one kept every 2, with TensorBoard."""
    run = tmp_path_factory.mktemp("runs") / "a"
    assert main(["--store", str(store), *FAST, "--run", str(run), "--steps", "4", "--ckpt-every", "1",
                 "--keep-every", "2", "--lr", "3e-4", "--tensorboard"]) == 0
    return run


def load(path):
    return torch.load(path, map_location="cpu", weights_only=False)


def encoder_weights(ckpt):
    return {k[8:]: v for k, v in ckpt["model"].items() if k.startswith("encoder.")}


def test_keep_every_keeps_the_checkpoints_of_those_steps(run4):
    kept = sorted(p.name for p in run4.glob("checkpoint-*.pt"))
    assert kept == ["checkpoint-0000002.pt", "checkpoint-0000004.pt"]
    two, last = load(run4 / kept[0]), load(run4 / "checkpoint.pt")
    assert two["step"] == 2 and load(run4 / kept[1])["step"] == last["step"] == 4
    assert not torch.equal(two["model"]["encoder.conv1.weight"], last["model"]["encoder.conv1.weight"])


def test_keep_every_must_be_a_multiple_of_ckpt_every(store, tmp_path, capsys):
    assert main(["--store", str(store), *FAST, "--run", str(tmp_path / "r"), "--steps", "2",
                 "--ckpt-every", "2", "--keep-every", "3"]) == 2
    assert "--keep-every 3 must be a multiple of --ckpt-every 2" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_tensorboard_events_hold_the_logged_curves(run4):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    rows = [json.loads(l) for l in (run4 / "log.jsonl").read_text().splitlines()]
    ea = EventAccumulator(str(run4 / "tensorboard"))
    ea.Reload()
    tags = set(ea.Tags()["scalars"])
    cycles = {k for k in rows[0] if k.startswith("acc_")}
    assert cycles and {f"train/{k}" for k in ("loss", "clips_per_s", "data_wait", "lr", *cycles)} <= tags
    loss = ea.Scalars("train/loss")
    assert [e.step for e in loss] == [1, 2, 3, 4]
    assert [e.value for e in loss] == pytest.approx([r["loss"] for r in rows], rel=1e-6)
    assert (run4 / "loss.png").stat().st_size > 0  # the PNG stays


def test_wandb_is_off_without_the_package_or_a_key(store, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc login
    assert main(["--store", str(store), *FAST, "--run", str(tmp_path / "r"), "--steps", "1", "--wandb"]) == 2
    assert "--wandb" in capsys.readouterr().err and not (tmp_path / "r").exists()


def test_export_writes_a_torchvision_encoder_that_evaluate_reads(run4, tmp_path):
    out = tmp_path / "enc" / "encoder.pt"
    assert export_main(["--run", str(run4), "--out", str(out)]) == 0
    rec = torch.load(out, map_location="cpu", weights_only=True)  # weights only: no pickled objects
    trained = load(run4 / "checkpoint.pt")["config"]["padding"]  # the default preset trains reflect-padded
    assert rec["padding"] == trained == "reflect" and rec["meta"]["steps"] == 4 and rec["meta"]["format"] == "spixwalk-encoder"
    assert rec["config"]["steps"] == 4 and rec["meta"]["data"]["label_configs"] == ["slic-n30-c30"]
    net = torchvision.models.resnet18()
    missing, unexpected = net.load_state_dict(rec["state_dict"], strict=False)
    assert missing == ["fc.weight", "fc.bias"] and unexpected == []
    want = encoder_weights(load(run4 / "checkpoint.pt"))
    assert all(torch.equal(rec["state_dict"][k], v) for k, v in want.items())
    assert resnet_state(rec, out)[2] == "spixwalk-export"
    enc = load_encoder(out)  # evaluate davis --ckpt reads it, padded as trained
    assert torch.equal(enc.layer3[0].conv1.weight, want["layer3.0.conv1.weight"])
    assert enc.layer3[0].conv1.padding_mode == "reflect"


def test_export_refuses_what_is_not_a_training_checkpoint(tmp_path, capsys):
    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "tv.pt")
    assert export_main(["--run", str(tmp_path), "--checkpoint", str(tmp_path / "tv.pt"), "--out",
                        str(tmp_path / "e.pt")]) == 2
    assert "not a spixwalk training checkpoint" in capsys.readouterr().err and not (tmp_path / "e.pt").exists()


@pytest.mark.parametrize("source", ["torchvision", "spixwalk", "export"])
def test_init_from_loads_encoder_weights(source, store, run4, tmp_path):
    if source == "torchvision":
        path, want = tmp_path / "tv.pt", torchvision.models.resnet18().state_dict()
        torch.save(want, path)
    elif source == "spixwalk":
        path, want = run4 / "checkpoint-0000002.pt", encoder_weights(load(run4 / "checkpoint-0000002.pt"))
    else:
        path = tmp_path / "enc.pt"
        assert export_main(["--run", str(run4), "--out", str(path)]) == 0
        want = load(path)["state_dict"]
    run = tmp_path / "b"
    # lr 1e-12: Adam's one step moves a weight by ~lr, so the weights stay where --init-from put them
    assert main(["--store", str(store), *FAST, "--run", str(run), "--steps", "1", "--lr", "1e-12",
                 "--init-from", str(path)]) == 0
    got = encoder_weights(load(run / "checkpoint.pt"))
    for k in ("conv1.weight", "layer1.0.conv1.weight", "layer4.1.conv2.weight"):
        assert torch.allclose(got[k], want[k], rtol=0, atol=1e-9), k


def test_init_from_with_other_shapes_is_one_clear_line(store, tmp_path, capsys):
    torch.save(torchvision.models.resnet34().state_dict(), tmp_path / "r34.pt")
    sd = torchvision.models.resnet18().state_dict()
    sd["conv1.weight"] = torch.zeros(64, 1, 7, 7)  # a grey-scale first layer
    torch.save(sd, tmp_path / "grey.pt")
    for name, why in (("r34.pt", "resnet34 weights"), ("grey.pt", "shape of conv1.weight is (64, 1, 7, 7)")):
        run = tmp_path / f"run-{name}"  # not the weights file itself: --run naming a file is refused on its own
        assert main(["--store", str(store), *FAST, "--run", str(run), "--steps", "1",
                     "--init-from", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert why in err and err.count("\n") == 1 and "Traceback" not in err
        assert not run.exists()


def test_config_reruns_a_run_with_overrides(run4, tmp_path):
    run = tmp_path / "rerun"
    assert main(["--config", str(run4 / "config.json"), "--run", str(run), "--steps", "2"]) == 0
    old, new = (json.loads((r / "config.json").read_text()) for r in (run4, run))
    diff = {k for k in old.keys() | new.keys() if old.get(k) != new.get(k)}
    assert diff == {"run", "steps", "config"} and new["steps"] == 2 and new["lr"] == 3e-4
    assert new["tensorboard"] and new["keep_every"] == 2 and (run / "checkpoint-0000002.pt").exists()


def test_config_that_is_not_a_run_config_exits_2(tmp_path, capsys):
    (tmp_path / "c.json").write_text("[1, 2]")
    for path in (tmp_path / "c.json", tmp_path / "missing.json"):
        with pytest.raises(SystemExit) as e:
            main(["--config", str(path)])
        assert e.value.code == 2 and f"--config {path}" in capsys.readouterr().err
