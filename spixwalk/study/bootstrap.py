"""Hierarchical paired bootstrap: seeds are the unit, sequences within them.

A comparison A - B holds, for every seed both arms ran, a vector of per-sequence differences (the same
sequences, paired: the same seed gives both arms the same initial weights and clip order). One resample
draws seeds with replacement, then, inside each drawn seed, sequences with replacement; the statistic is
the mean over drawn seeds of the mean over drawn sequences. The interval is the percentile interval of
that statistic over the resamples. With one seed it is the paired sequence bootstrap of earlier studies;
with many seeds and identical sequences it is the seed bootstrap.
"""
from __future__ import annotations

import numpy as np


def hierarchical(diffs: np.ndarray, n: int = 10_000, level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """diffs (seeds, sequences) of paired differences -> (mean, low, high)."""
    d = np.asarray(diffs, dtype=np.float64)
    if d.ndim != 2 or d.size == 0:
        raise ValueError(f"expected a (seeds, sequences) array, got shape {d.shape}")
    S, Q = d.shape
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, S, size=(n, S))
    seqs = rng.integers(0, Q, size=(n, S, Q))
    stats = d[seeds[..., None], seqs].mean(axis=(1, 2))
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(stats, [tail, 100 - tail])
    return float(d.mean()), float(low), float(high)


def paired(scores_a: dict, scores_b: dict) -> np.ndarray:
    """{seed: {sequence: score}} of two arms -> (seeds both have, sequences both have) array of a - b."""
    seeds = sorted(set(scores_a) & set(scores_b))
    if not seeds:
        return np.zeros((0, 0))
    seqs = sorted(set.intersection(*(set(scores_a[s]) & set(scores_b[s]) for s in seeds)))
    return np.array([[scores_a[s][q] - scores_b[s][q] for q in seqs] for s in seeds])
