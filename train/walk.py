"""Palindrome contrastive random walk over padded node sets.

A_t^{t+1} = softmax(Q_t Q_{t+1}^T / tau) row-wise. Padded nodes and dropped edges get probability
exactly 0 (masked before the softmax, never a finite -1e20 that still leaks weight when a whole row is
dropped), padded start nodes are left out of the loss and of the accuracy, and the loss is averaged over
real start nodes only, so padding a batch to a larger M changes nothing.

Edge dropout draws one uniform per edge, forward transitions t = 0..T-2 first, then backward ones
(CRW's draw order). drop_mode="crw" reproduces videowalk as shipped: it sets dropped affinities in
place on a view, so the backward step t+1 -> t also loses every edge dropped on the way forward
(transposed) before dropping its own (about 19% at drop=0.1). "independent": two separate 10% masks.
"""
import torch

EPS = 1e-20
CYCLES = ("crw", "all")
DROP_MODES = ("crw", "independent")


def transitions(q0: torch.Tensor, q1: torch.Tensor, mask1: torch.Tensor, tau: float, drop: float,
                generator: torch.Generator | None = None, also_drop: torch.Tensor | None = None,
                draw_transposed: bool = False):
    """Row-stochastic (B, N, M) matrix from nodes q0 (B, N, D) to q1 (B, M, D); mask1 (B, M) marks real targets.

    also_drop (B, N, M) adds edges to drop. draw_transposed draws the uniforms as a (B, M, N) block read
    transposed: CRW's rand_like of a transposed view keeps its strides and fills memory order.
    Returns (matrix, the edges this call dropped)."""
    logits = torch.bmm(q0, q1.transpose(1, 2)) / tau
    keep = mask1[:, None, :].expand_as(logits)
    dropped = None
    if drop > 0:
        B, N, M = logits.shape
        shape = (B, M, N) if draw_transposed else (B, N, M)
        u = torch.rand(shape, generator=generator, device=logits.device)
        dropped = (u.transpose(1, 2) if draw_transposed else u) < drop
        if also_drop is not None:
            dropped = dropped | also_drop
        kept = keep & ~dropped
        # a row whose every real edge was dropped keeps them all: a walk must go somewhere
        keep = torch.where(kept.any(-1, keepdim=True), kept, keep)
    return torch.softmax(logits.masked_fill(~keep, float("-inf")), dim=-1), dropped


def walk_loss(q: torch.Tensor, mask: torch.Tensor, tau: float = 0.05, drop: float = 0.1,
              cycles: str = "all", generator: torch.Generator | None = None, drop_mode: str = "crw"):
    """q (B, T, M, D) L2-normalised nodes, mask (B, T, M) real nodes.

    cycles="all" (thesis text): palindromes of every length k=1..T-1, losses summed.
    cycles="crw" (videowalk): k=2..T-1, losses averaged.
    Returns (loss, {k: xent_k}, {k: acc_k}) with detached per-cycle diagnostics.
    """
    if cycles not in CYCLES or drop_mode not in DROP_MODES:
        raise ValueError(f"cycles {cycles!r} not in {CYCLES} or drop_mode {drop_mode!r} not in {DROP_MODES}")
    T = q.shape[1]
    fwd, fwd_drop = zip(*[transitions(q[:, t], q[:, t + 1], mask[:, t + 1], tau, drop, generator)
                          for t in range(T - 1)])
    crw = drop_mode == "crw"
    inherit = [d.transpose(1, 2) if crw and d is not None else None for d in fwd_drop]
    bwd = [transitions(q[:, t + 1], q[:, t], mask[:, t], tau, drop, generator, inherit[t], crw)[0]
           for t in range(T - 1)]
    ks = range(1, T) if cycles == "all" else range(2, T)
    start = mask[:, 0]
    n_start = start.sum().clamp_min(1)
    losses, xents, accs = [], {}, {}
    walk = None
    for k in range(1, T):
        walk = fwd[0] if walk is None else walk @ fwd[k - 1]  # t=0 -> t=k
        if k not in ks:
            continue
        cycle = walk
        for t in reversed(range(k)):
            cycle = cycle @ bwd[t]  # back t+1 -> t
        ret = torch.diagonal(cycle, dim1=1, dim2=2)  # P(return to the start node), (B, M)
        xent = -(torch.log(ret + EPS) * start).sum() / n_start
        hit = (cycle.argmax(-1) == torch.arange(cycle.shape[-1], device=q.device)) & start
        losses.append(xent)
        xents[k] = xent.detach()
        accs[k] = (hit.sum() / n_start).detach()
    loss = torch.stack(losses).sum() if cycles == "all" else torch.stack(losses).mean()
    return loss, xents, accs
