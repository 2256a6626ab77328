"""Parity with CRW (ajabri/videowalk) as shipped, on fixed inputs.

The reference numbers below were produced once, outside this repository, by running videowalk's own
`code/model.py` CRW.forward (args: dropout, temp 0.05, model_type scratch) with `pixels_to_nodes`
replaced by the fixed nodes of `fixed_nodes()` and torch.manual_seed(seed) right before the forward
(its edge dropout draws torch.rand_like from the global generator: forward transitions t = 0..T-2,
then backward ones on the transposed views), and its `utils.make_encoder(model_type="scratch")`
ResNet-18 with our Encoder's seeded weights loaded strictly. No reference code is part of spixwalk.
"""
import torch
import torch.nn.functional as F
import torchvision

from spixwalk.train.model import Encoder
from spixwalk.train.weights import encoder_from_state, load_encoder
from spixwalk.train.walk import walk_loss

# (drop, seed) -> CRW.forward loss, |d loss / d q|, d loss / d q[0, 0, 0, :3]
CRW_WALK = {
    (0.0, 1): (4.24977875, 6.70332575, (0.38052905, 0.20990998, -0.26859900)),
    (0.1, 1): (3.74441457, 6.76162529, (0.30924037, 0.06017140, -0.18369082)),
    (0.1, 7): (4.51482916, 7.51810265, (0.04214518, 0.04073766, -0.18407644)),
}
# CRW scratch ResNet-18 (reflect padding, layer3/4 at stride 1) on fixed_weights() and fixed_frames(), eval mode
CRW_SCRATCH = {"sum": 189938.889178167, "abs_mean": 2.5762110619868572,
               (1, 5, 4, 3): 6.112270355224609, (0, 7, 8, 7): 8.896337509155273, (1, 300, 0, 0): 2.4427459239959717}


def fixed_nodes():
    g = torch.Generator().manual_seed(0)
    return F.normalize(torch.randn(2, 5, 6, 8, generator=g, dtype=torch.float64).float(), dim=-1)


def crw_loss(drop, seed, drop_mode="crw"):
    q = fixed_nodes().requires_grad_(True)
    loss, _, _ = walk_loss(q, torch.ones(q.shape[:3], dtype=torch.bool), 0.05, drop, "crw",
                           torch.Generator().manual_seed(seed), drop_mode)
    loss.backward()
    return loss, q.grad


def test_walk_loss_and_gradient_equal_crw_forward_with_its_edge_dropout():
    for (drop, seed), (ref_loss, ref_norm, ref_g) in CRW_WALK.items():
        loss, grad = crw_loss(drop, seed)
        assert abs(loss.item() - ref_loss) < 1e-5, (drop, seed, loss.item())
        assert abs(grad.norm().item() - ref_norm) < 1e-5, (drop, seed)
        torch.testing.assert_close(grad[0, 0, 0, :3], torch.tensor(ref_g), atol=1e-6, rtol=0)


def test_global_generator_draws_the_same_dropout():
    torch.manual_seed(7)  # CRW draws from the global generator: generator=None must see the same stream
    q = fixed_nodes()
    loss = walk_loss(q, torch.ones(q.shape[:3], dtype=torch.bool), 0.05, 0.1, "crw")[0]
    assert abs(loss.item() - CRW_WALK[(0.1, 7)][0]) < 1e-5


def test_independent_masks_are_not_crws_dropout():
    # same uniforms, but the backward step neither inherits the forward drops nor reads its block transposed
    loss, _ = crw_loss(0.1, 1, drop_mode="independent")
    assert abs(loss.item() - CRW_WALK[(0.1, 1)][0]) > 0.1


def fixed_weights():
    torch.manual_seed(0)
    return Encoder(padding="reflect").state_dict()


def fixed_frames():
    return torch.randn(2, 3, 72, 64, generator=torch.Generator().manual_seed(1))


@torch.no_grad()
def test_reflect_encoder_equals_crw_scratch_resnet18():
    out = encoder_from_state(fixed_weights(), padding="reflect").eval()(fixed_frames()).double()
    assert out.shape == (2, 512, 9, 8)
    assert abs(out.sum().item() / CRW_SCRATCH["sum"] - 1) < 1e-5
    assert abs(out.abs().mean().item() / CRW_SCRATCH["abs_mean"] - 1) < 1e-5
    for idx in [k for k in CRW_SCRATCH if isinstance(k, tuple)]:
        assert abs(out[idx].item() - CRW_SCRATCH[idx]) < 1e-4, idx
    zeros = encoder_from_state(fixed_weights(), padding="zeros").eval()(fixed_frames()).double()
    assert abs(zeros.sum().item() / CRW_SCRATCH["sum"] - 1) > 1e-3  # the padding is what makes it CRW's


def test_padding_travels_in_the_checkpoint_and_weights_stay_torchvision(tmp_path):
    state = fixed_weights()
    new, old = tmp_path / "new.pt", tmp_path / "old.pt"
    torch.save({"model": {f"encoder.{k}": v for k, v in state.items()}, "padding": "reflect"}, new)
    torch.save({"model": {f"encoder.{k}": v for k, v in state.items()}}, old)  # before the option existed
    assert load_encoder(str(new)).conv1.padding_mode == "reflect"
    assert load_encoder(str(new), drop_layer4=True).layer3[0].conv2.padding_mode == "reflect"
    assert load_encoder(str(old)).layer1[0].conv1.padding_mode == "zeros"
    assert load_encoder(str(new), padding="zeros").conv1.padding_mode == "zeros"
    missing, unexpected = torchvision.models.resnet18().load_state_dict(state, strict=False)
    assert missing == ["fc.weight", "fc.bias"] and unexpected == []
