"""Superpixel quality against a ground-truth segmentation: the one boundary recall, undersegmentation
error and achievable segmentation accuracy of the project (the superpixel benchmark and
benchmarks/preprocess.py both use these).

sp and gt are integer label maps of the same shape (superpixel ids; ground-truth segment ids, e.g.
0 = background and k = object k).
"""
import cv2
import numpy as np


def overlap(sp: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Pixel counts |s ∩ g|, shape (superpixels, gt segments), both indexed by label value."""
    sp, gt = sp.astype(np.int64, copy=False).ravel(), gt.astype(np.int64, copy=False).ravel()
    n_sp, n_gt = int(sp.max()) + 1, int(gt.max()) + 1
    return np.bincount(sp * n_gt + gt, minlength=n_sp * n_gt).reshape(n_sp, n_gt)


def boundaries(lab: np.ndarray) -> np.ndarray:
    """Boundary pixels: those whose right or lower neighbour has another label (one pixel per edge)."""
    b = np.zeros(lab.shape, bool)
    b[:, :-1] |= lab[:, :-1] != lab[:, 1:]
    b[:-1, :] |= lab[:-1, :] != lab[1:, :]
    return b


def boundary_recall(sp: np.ndarray, gt: np.ndarray, tol: int = 2) -> float:
    """Fraction of ground-truth boundary pixels with a superpixel boundary pixel within `tol` pixels
    (Chebyshev distance, i.e. a (2 tol + 1)^2 window). NaN where the ground truth has no boundary."""
    g = boundaries(gt)
    if not g.any():
        return float("nan")
    near = cv2.dilate(boundaries(sp).astype(np.uint8), np.ones((2 * tol + 1, 2 * tol + 1), np.uint8))
    return float((g & near.astype(bool)).sum() / g.sum())


def undersegmentation_error(sp: np.ndarray = None, gt: np.ndarray = None, ov: np.ndarray = None) -> float:
    """Neubert & Protzel's corrected UE: (1/N) sum over superpixels s and segments g it touches of
    min(|s ∩ g|, |s \\ g|), the smaller of the part inside and the part leaking out."""
    ov = overlap(sp, gt) if ov is None else ov
    size = ov.sum(1, keepdims=True)
    return float(np.minimum(ov, size - ov).sum() / ov.sum())


def achievable_accuracy(sp: np.ndarray = None, gt: np.ndarray = None, ov: np.ndarray = None) -> float:
    """ASA: fraction of pixels labelled correctly when each superpixel takes its majority segment."""
    ov = overlap(sp, gt) if ov is None else ov
    return float(ov.max(1).sum() / ov.sum())
