"""Superpixel pooling (eq. 3.5) against a literal per-superpixel loop: values and gradients."""
import numpy as np
import torch

from spixwalk.train.pool import overlap_weights, pool, pool_naive, pool_onehot, pool_scatter


def labels_with_small_and_absent(rng, H=64, W=64, S=9):
    lab = rng.integers(0, 4, (H // 16, W // 16)).repeat(16, 0).repeat(16, 1).astype(np.int16)
    lab[lab == 2] = 7  # ids 2, 4, 6 absent: what a crop does before relabelling
    lab[5, 5] = 8  # one-pixel superpixel
    lab[30:33, 40] = 5  # three pixels straddling a cell border
    lab[63, 0:17] = 1  # a thin strip over three cells
    return lab, S


def _case(seed):
    rng = np.random.default_rng(seed)
    labs = [labels_with_small_and_absent(rng)[0] for _ in range(3)]
    M = 9
    w = torch.zeros(3, M, 64)
    for f, l in enumerate(labs):
        ow = overlap_weights(l)
        w[f, :len(ow)] = torch.from_numpy(ow)
    feats = torch.randn(3, 16, 8, 8, dtype=torch.float64, requires_grad=True)
    return feats, torch.from_numpy(np.stack(labs)), w.double(), M


def test_weights_are_overlap_fractions():
    lab = np.zeros((16, 16), np.int16)
    lab[0:4, 0:12] = 1  # 48 px: 32 in cell (0,0), 16 in cell (0,1)
    w = overlap_weights(lab)
    assert w.shape == (2, 4)
    np.testing.assert_allclose(w[1], [32 / 48, 16 / 48, 0, 0])
    np.testing.assert_allclose(w.sum(1), 1)


def test_pool_matches_naive_loop_values_and_gradients():
    feats, labs, w, M = _case(0)
    ref = pool_naive(feats, labs, M)
    g = torch.randn_like(ref)
    (gref,) = torch.autograd.grad((ref * g).sum(), feats)
    for fn in (lambda: pool(feats, w), lambda: pool_scatter(feats, w), lambda: pool_onehot(feats, labs, M)):
        out = fn()
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)
        (gout,) = torch.autograd.grad((out * g).sum(), feats)
        torch.testing.assert_close(gout, gref, atol=1e-5, rtol=0)
    # absent labels pool to exactly zero; the one-pixel superpixel is its cell's feature
    out = pool(feats, w)
    assert torch.all(out[:, [2, 4, 6]] == 0)
    torch.testing.assert_close(out[:, 8], feats[:, :, 0, 0])


def test_pool_channels_last_float32_matches():
    feats, labs, w, M = _case(1)
    f32 = feats.detach().float().contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(pool(f32, w.float()), pool_naive(f32, labs, M), atol=1e-5, rtol=1e-5)
