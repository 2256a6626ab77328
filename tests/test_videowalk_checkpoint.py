"""CRW's own checkpoints (ajabri/videowalk train.py layout, its released pretrained.pth among them) and
torchvision state dicts with --padding: evaluated with the features CRW's encoder gives.

The reference numbers were produced once, outside this repository, by building videowalk's own encoder
(`code/resnet.py` resnet18 + `utils.make_encoder(model_type=..., remove_layers=["layer4"])`, wrapped in its
`From3D`), loading `fixed_weights()` minus layer4 strictly into it, and running it in eval mode on
`fixed_frames()` as one (1, 3, T=2, 72, 64) clip. No reference code is part of spixwalk.
"""
import argparse
import json

import pytest
import torch

from spixwalk.evaluate.cli import main
from spixwalk.train.checkpoints import init_from
from spixwalk.train.model import Encoder
from spixwalk.train.weights import WeightsError, load_encoder, resnet_state, read

from test_train_parity import fixed_frames, fixed_weights

# model_type -> res3 features (2, 256, 9, 8): sum, mean |x|, values at indices
CRW_RES3 = {
    "scratch": (63492.906793600734, 1.722355327517381,
                {(1, 5, 4, 3): 2.1061501502990723, (0, 18, 4, 5): 5.151749610900879,
                 (0, 37, 8, 0): 1.5448135137557983, (0, 255, 8, 0): 0.08056151866912842}),
    "scratch_zeropad": (48113.683516467296, 1.3051671960847249,
                        {(1, 5, 4, 3): 2.0481300354003906, (0, 22, 7, 2): 2.461595058441162,
                         (0, 43, 2, 0): 2.064765214920044, (0, 255, 8, 0): 0.1988324373960495}),
}


def videowalk_file(path, model_type="scratch", layer4=False, old_names=False):
    """A checkpoint as videowalk's train.py saves it: CRW's state dict (From3D encoder + head), args, optimizer."""
    model = {}
    for k, v in fixed_weights().items():
        if k.startswith("layer4.") and not layer4:
            continue
        if old_names and k.endswith(("conv1.weight", "conv2.weight")):
            k = k[:-len("weight")] + "1.weight"  # early releases: (ReflectionPad2d, Conv2d) pairs
        model[f"encoder.model.{k}"] = v
    model["selfsim_fc.0.weight"], model["selfsim_fc.0.bias"] = torch.zeros(128, 256), torch.zeros(128)
    args = argparse.Namespace(model_type=model_type, remove_layers=[] if layer4 else ["layer4"], temp=0.05)
    torch.save({"model": model, "optimizer": {"state": {}, "param_groups": []}, "lr_scheduler": {},
                "epoch": 3, "args": args}, path)
    return path


def assert_crw_features(enc, model_type):
    with torch.no_grad():
        out = enc.eval()(fixed_frames()).double()
    total, abs_mean, values = CRW_RES3[model_type]
    assert out.shape == (2, 256, 9, 8)
    assert abs(out.sum().item() / total - 1) < 1e-5, (model_type, out.sum().item())
    assert abs(out.abs().mean().item() / abs_mean - 1) < 1e-5
    for idx, v in values.items():
        assert abs(out[idx].item() - v) < 1e-4, idx


@pytest.mark.parametrize("model_type", ["scratch", "scratch_zeropad"])
def test_videowalk_checkpoint_gives_crws_features_padded_as_its_args_say(tmp_path, model_type):
    path = videowalk_file(tmp_path / "checkpoint.pth", model_type)
    assert resnet_state(read(path), path)[2] == "videowalk"
    enc = load_encoder(path, drop_layer4=True, default_padding="zeros" if model_type == "scratch" else "reflect")
    assert enc.padding == ("reflect" if model_type == "scratch" else "zeros")
    assert_crw_features(enc, model_type)


def test_early_release_conv_names_are_read(tmp_path):
    enc = load_encoder(videowalk_file(tmp_path / "old.pth", old_names=True), drop_layer4=True)
    assert_crw_features(enc, "scratch")


def test_torchvision_state_dict_honours_padding(tmp_path):
    path = tmp_path / "r18.pth"
    torch.save(fixed_weights(), path)  # torchvision names, no padding recorded
    assert_crw_features(load_encoder(path, drop_layer4=True, default_padding="reflect"), "scratch")
    assert_crw_features(load_encoder(path, drop_layer4=True), "scratch_zeropad")


SYNTH_DAVIS = dict(n_sequences=1, n_frames=2, height=48, width=64, n_objects=1, seed=1)  # conftest.synth_davis


def davis(synth_davis, ckpt, out, *extra):
    # --no-metrics: 2-frame sequences leave nothing to score (the first and last frames are not scored)
    return main(["davis", "--davis", str(synth_davis), "--ckpt", str(ckpt), "--out", str(out), "--no-overlays",
                 "--no-metrics", *extra])


def test_eval_config_records_the_padding_used(synth_davis, tmp_path, capsys):
    crw, tv = videowalk_file(tmp_path / "crw.pth"), tmp_path / "r18.pth"
    torch.save(fixed_weights(), tv)
    assert davis(synth_davis, tv, tmp_path / "tv", "--padding", "reflect") == 0
    assert json.loads((tmp_path / "tv" / "config.json").read_text())["padding"] == "reflect"
    assert davis(synth_davis, crw, tmp_path / "crw", "--padding", "zeros") == 0  # the file says scratch: reflect
    assert json.loads((tmp_path / "crw" / "config.json").read_text())["padding"] == "reflect"
    assert "records its padding (args.model_type scratch): reflect, not --padding zeros" in capsys.readouterr().err


def test_init_from_videowalk_needs_its_layer4(tmp_path):
    enc = Encoder(padding="zeros")
    with pytest.raises(WeightsError, match="no layer4 weights"):
        init_from(enc, videowalk_file(tmp_path / "no4.pth"))
    assert init_from(enc, videowalk_file(tmp_path / "with4.pth", layer4=True)) == ("videowalk", "reflect")
    assert torch.equal(enc.layer4[1].conv2.weight, fixed_weights()["layer4.1.conv2.weight"])
