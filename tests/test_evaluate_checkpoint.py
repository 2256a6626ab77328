"""`evaluate davis --ckpt`: every file a user may pass is either evaluated or refused with exit 2 and one line."""
import pickle

import pytest
import torch
import torchvision

from spixwalk.evaluate.cli import main
from spixwalk.train.weights import load_encoder


SYNTH_DAVIS = dict(n_sequences=1, n_frames=3, height=64, width=96, n_objects=1, seed=1)  # conftest.synth_davis


def davis(synth_davis, ckpt, out):
    return main(["davis", "--davis", str(synth_davis), "--ckpt", str(ckpt), "--out", str(out), "--no-overlays"])


def refused(synth_davis, tmp_path, capsys, ckpt, *phrases):
    assert davis(synth_davis, ckpt, tmp_path / "out") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {ckpt}") and "Traceback" not in err[0], err
    for p in phrases:
        assert p in err[0], err[0]
    assert not (tmp_path / "out").exists()  # refused before any work


def test_unreadable_files(synth_davis, tmp_path, capsys):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a checkpoint" * 100)
    refused(synth_davis, tmp_path, capsys, garbage, "unreadable, not a PyTorch checkpoint")
    refused(synth_davis, tmp_path, capsys, tmp_path / "absent.pt", "checkpoint not found")


def test_a_checkpoint_whose_bytes_changed_is_refused(synth_davis, tmp_path, capsys):
    from spixwalk.train import digest

    ckpt = tmp_path / "r18.pt"
    torch.save(torchvision.models.resnet18().state_dict(), ckpt)
    digest.record(ckpt, digest.sha256_of(ckpt))  # as the trainer and export write their files
    data = bytearray(ckpt.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one weight byte: torch.load alone would not notice
    ckpt.write_bytes(bytes(data))
    torch.load(ckpt)
    refused(synth_davis, tmp_path, capsys, ckpt, "damaged", "r18.pt.sha256")


def test_not_a_checkpoint(synth_davis, tmp_path, capsys):
    listed = tmp_path / "list.pt"
    torch.save([1, 2, 3], listed)
    refused(synth_davis, tmp_path, capsys, listed, "not a spixwalk or torchvision checkpoint", "holds a list")
    pickled = tmp_path / "list.pkl"
    pickled.write_bytes(pickle.dumps([1, 2, 3]))
    assert davis(synth_davis, pickled, tmp_path / "out") == 2
    assert "error: " in capsys.readouterr().err
    other = tmp_path / "dict.pt"
    torch.save({"epoch": 3, "lr": 0.1}, other)
    refused(synth_davis, tmp_path, capsys, other, "no tensor weights")


def test_other_architecture_named(synth_davis, tmp_path, capsys):
    r50 = tmp_path / "r50.pt"
    torch.save(torchvision.models.resnet50().state_dict(), r50)
    refused(synth_davis, tmp_path, capsys, r50, "resnet50 weights: expected a ResNet-18 encoder")
    sd = torchvision.models.resnet18().state_dict()
    sd["layer2.0.conv1.weight"] = torch.zeros(64, 64, 3, 3)  # a ResNet-18 layout with other widths
    bad = tmp_path / "wide.pt"
    torch.save({"state_dict": sd}, bad)
    refused(synth_davis, tmp_path, capsys, bad, "not a ResNet-18 encoder: shape of layer2.0.conv1.weight is (64, 64, 3, 3)")


def test_plain_torchvision_resnet18_state_dict_is_evaluated(synth_davis, tmp_path):
    torch.manual_seed(3)
    sd = torchvision.models.resnet18().state_dict()
    path = tmp_path / "r18.pth"
    torch.save(sd, path)
    enc = load_encoder(path)
    assert torch.equal(enc.layer3[1].conv2.weight, sd["layer3.1.conv2.weight"])
    assert davis(synth_davis, path, tmp_path / "out") == 0
    assert len(list((tmp_path / "out").glob("*/*.png"))) == 3


def test_spixwalk_checkpoint_loads_its_encoder(tmp_path):
    from spixwalk.train.model import WalkNet

    net = WalkNet()
    path = tmp_path / "checkpoint.pt"
    torch.save({"model": net.state_dict(), "step": 1, "config": {"nodes": "superpixels"}}, path)
    enc = load_encoder(path)
    assert torch.equal(enc.conv1.weight, net.encoder.conv1.weight)
    assert torch.equal(enc.layer3[0].bn1.running_var, net.encoder.layer3[0].bn1.running_var)


def test_random_init_baseline_takes_the_padding_of_the_runs_it_is_compared_with():
    from spixwalk.evaluate import features

    zeros, reflect = features.make("random", seed=0), features.make("random", seed=0, padding="reflect")
    assert reflect.net.layer3[0].conv1.padding_mode == "reflect" and zeros.net.layer3[0].conv1.padding_mode == "zeros"
    assert all(torch.equal(a, b) for a, b in zip(zeros.net.parameters(), reflect.net.parameters()))  # same draw
    img = (torch.rand(64, 96, 3) * 255).to(torch.uint8).numpy()
    fz, fr = zeros(img), reflect(img)
    assert not torch.allclose(fz[:, 0], fr[:, 0])  # the border ring differs
