"""Palindrome walk loss: padding invariance, sanity values, CRW's variant, masked degenerate input."""
import functools
import math

import torch
import torch.nn.functional as F

from spixwalk.train.walk import walk_loss


def real_nodes(seed=0, B=3, T=4, D=16, sizes=((5, 1, 7, 3), (2, 6, 6, 4), (7, 7, 1, 1))):
    g = torch.Generator().manual_seed(seed)
    return [[F.normalize(torch.randn(n, D, generator=g, dtype=torch.float64), dim=-1) for n in frame_sizes]
            for frame_sizes in sizes[:B]]


def padded(nodes, M, junk_seed=1):
    """(B, T, M, D) with junk in the padded rows, and the mask."""
    g = torch.Generator().manual_seed(junk_seed)
    B, T, D = len(nodes), len(nodes[0]), nodes[0][0].shape[1]
    q = F.normalize(torch.randn(B, T, M, D, generator=g, dtype=torch.float64), dim=-1)
    mask = torch.zeros(B, T, M, dtype=torch.bool)
    leaves = []
    for b in range(B):
        for t in range(T):
            leaf = nodes[b][t].clone().requires_grad_(True)
            leaves.append(leaf)
            q = q.index_put((torch.tensor(b), torch.tensor(t), torch.arange(len(leaf))), leaf)
            mask[b, t, :len(leaf)] = True
    return q, mask, leaves


def test_padding_to_larger_m_changes_nothing():
    nodes = real_nodes()
    results = []
    for M, junk in ((7, 1), (19, 2)):
        q, mask, leaves = padded(nodes, M, junk)
        loss, xents, accs = walk_loss(q, mask, tau=0.05, drop=0.0)
        grads = torch.autograd.grad(loss, leaves)
        results.append((loss, xents, accs, grads))
    (l1, x1, a1, g1), (l2, x2, a2, g2) = results
    torch.testing.assert_close(l1, l2, atol=1e-10, rtol=1e-10)
    for k in x1:
        torch.testing.assert_close(x1[k], x2[k])
        torch.testing.assert_close(a1[k], a2[k])
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-8)
    assert all(torch.isfinite(g).all() for g in g1)


def test_own_nearest_neighbour_gives_zero_loss():
    N, T = 10, 4
    q = torch.eye(N, 16).expand(2, T, N, 16).clone()  # node i is the same orthogonal vector in every frame
    loss, xents, accs = walk_loss(q, torch.ones(2, T, N, dtype=torch.bool), tau=0.05, drop=0.0)
    assert loss.item() < 1e-4
    assert all(a.item() == 1.0 for a in accs.values())


def test_random_embeddings_give_log_n_per_cycle():
    N, T = 49, 4
    q = F.normalize(torch.randn(16, T, N, 128, generator=torch.Generator().manual_seed(0)), dim=-1)
    loss, xents, _ = walk_loss(q, torch.ones(16, T, N, dtype=torch.bool), tau=1.0, drop=0.0)
    for k, x in xents.items():  # near-uniform transitions: returning is a 1-in-N guess
        assert abs(x.item() - math.log(N)) < 0.02 * math.log(N), (k, x.item())
    assert abs(loss.item() - (T - 1) * math.log(N)) < 0.06 * math.log(N)  # summed over k=1..T-1


def crw_reference(q, tau):
    """videowalk's model.forward without edge dropout, re-derived: q (B, T, N, D)."""
    B, T, N, _ = q.shape
    aff = torch.einsum("btnd,btmd->btnm", q[:, :-1], q[:, 1:])
    a12 = [torch.softmax(aff[:, t] / tau, -1) for t in range(T - 1)]
    a21 = [torch.softmax(aff[:, t].transpose(-1, -2) / tau, -1) for t in range(T - 1)]
    xents = []
    for i in range(1, T - 1):
        chain = a12[:i + 1] + a21[:i + 1][::-1]
        aa = functools.reduce(torch.matmul, chain)
        logits = torch.log(aa + 1e-20).flatten(0, -2)
        xents.append(F.cross_entropy(logits, torch.arange(N).repeat(B)))
    return sum(xents) / max(1, len(xents))


def test_crw_cycles_equal_videowalk_formula():
    q = F.normalize(torch.randn(3, 5, 12, 32, generator=torch.Generator().manual_seed(3), dtype=torch.float64), dim=-1)
    q.requires_grad_(True)
    ours, xents, _ = walk_loss(q, torch.ones(3, 5, 12, dtype=torch.bool), tau=0.05, drop=0.0, cycles="crw")
    ref = crw_reference(q, 0.05)
    torch.testing.assert_close(ours, ref, atol=1e-10, rtol=1e-10)
    assert sorted(xents) == [2, 3, 4]
    torch.testing.assert_close(torch.autograd.grad(ours, q)[0], torch.autograd.grad(ref, q)[0])


def test_single_node_frames_and_full_edge_dropout_stay_finite():
    nodes = real_nodes(sizes=((1, 1, 1, 1), (1, 4, 1, 2)), B=2)
    q, mask, leaves = padded(nodes, 4)
    torch.manual_seed(0)
    loss, xents, accs = walk_loss(q, mask, tau=0.05, drop=0.95)  # most rows lose every edge
    grads = torch.autograd.grad(loss, leaves)
    assert torch.isfinite(loss) and all(torch.isfinite(g).all() for g in grads)
    # clip 0 has one node per frame: it always returns; the loss is clip 1's only
    assert loss.item() > -1e-6


def test_dropped_edges_get_zero_probability():
    from spixwalk.train.walk import transitions
    q0 = F.normalize(torch.randn(4, 20, 8), dim=-1)
    mask = torch.ones(4, 20, dtype=torch.bool)
    mask[:, 15:] = False
    torch.manual_seed(1)
    A, _ = transitions(q0, q0, mask, tau=0.05, drop=0.5)
    assert torch.all(A[..., 15:] == 0)
    zero_real = (A[..., :15] == 0).float().mean().item()
    assert 0.35 < zero_real < 0.65  # about half of the real edges dropped
    torch.testing.assert_close(A.sum(-1), torch.ones(4, 20))


def test_padding_invariance_through_the_network():
    from spixwalk.train.model import WalkNet
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small ops: busy-waiting OpenMP threads on a shared CPU cost more than they give
    try:
        _padding_through_network(WalkNet)
    finally:
        torch.set_num_threads(threads)


def _padding_through_network(WalkNet):
    torch.manual_seed(0)
    net = WalkNet().double()
    frames = torch.randint(0, 255, (2, 3, 3, 64, 64), dtype=torch.uint8)
    sizes = torch.tensor([[3, 1, 5], [4, 4, 2]])
    w = torch.rand(2, 3, 5, 64, dtype=torch.float64)
    mask = torch.arange(5) < sizes[..., None]
    w = w * mask[..., None]
    w = w / w.sum(-1, keepdim=True).clamp_min(1e-12)
    out = []
    for M in (5, 11):
        wM = torch.cat([w, torch.zeros(2, 3, M - 5, 64, dtype=torch.float64)], 2)
        mM = torch.cat([mask, torch.zeros(2, 3, M - 5, dtype=torch.bool)], 2)
        net.zero_grad()
        loss = walk_loss(net(frames, wM, torch.tensor([False, False])), mM, drop=0.0)[0]
        loss.backward()
        out.append((loss.detach(), [p.grad.clone() for p in net.parameters()]))
    torch.testing.assert_close(out[0][0], out[1][0], atol=1e-10, rtol=1e-10)
    for a, b in zip(out[0][1], out[1][1]):
        torch.testing.assert_close(a, b, atol=1e-9, rtol=1e-7)


def test_patch_grid_is_crws_7x7_at_any_image_size():
    from spixwalk.train.data import collate, n_patches
    from spixwalk.train.model import WalkNet, patch_boxes, patch_grid

    for size in (256, 128):
        patch, stride = patch_grid(size)
        boxes = patch_boxes(2, size, patch, stride)[0]
        assert boxes.shape == (49, 4) and n_patches(size) == 49
        assert boxes[:, 2].max().item() == size and (boxes[:, 2] - boxes[:, 0]).eq(patch).all()
    # the loader pads patch clips to the same 49 nodes the network builds (no node silently cut)
    item = {"frames": torch.zeros(2, 3, 128, 128, dtype=torch.uint8), "weights": None, "patch": True}
    batch = collate([item])
    assert batch["mask"].sum().item() == 2 * 49
    net = WalkNet(*patch_grid(128)).eval()
    with torch.no_grad():
        nodes = net(batch["frames"], batch["weights"], batch["patch"])
    assert nodes.shape[2] == 49
