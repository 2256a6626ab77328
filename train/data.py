"""Clips of T stored frames with their label maps, augmented identically, plus the pooling weights.

Everything random about a clip (crop, flip, jitter, node mode, label configuration) is drawn from a
generator seeded by (seed, epoch, clip index), so a clip does not depend on which worker loads it and
training resumes exactly from a saved data position.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from spixwalk import faults
from spixwalk.preprocess.store import StoreReader, VideoRef

from . import device_aug
from .model import n_patches  # noqa: F401  (re-exported: its home is the model's patch grid)
from .pool import overlap_weights


FRAME_TRANSFORMS = ("crop", "cj", "flip")  # CRW's --frame-transforms tokens; CRW trains with "crop" only


@dataclass
class Aug:
    size: int = 256
    scale: tuple = (0.8, 0.95)  # CRW's RandomResizedCrop
    ratio: tuple = (0.7, 1.3)
    flip: bool = True
    jitter: float = 0.1  # brightness / contrast / saturation, CRW's ColorJitter(0.1, 0.1, 0.1, 0)

    @classmethod
    def from_transforms(cls, transforms: str, size: int) -> "Aug":
        """Aug for a comma list of FRAME_TRANSFORMS; without crop each frame is only resized."""
        t = set(transforms.split(","))
        kw = {} if "crop" in t else {"scale": (1.0, 1.0), "ratio": (1.0, 1.0)}
        return cls(size=size, flip="flip" in t, jitter=0.1 if "cj" in t else 0.0, **kw)


def crop_box(rng: np.random.Generator, H: int, W: int, scale, ratio) -> tuple[int, int, int, int]:
    """torchvision RandomResizedCrop's box (y, x, h, w), drawn from rng."""
    area = H * W
    for _ in range(10):
        a = area * rng.uniform(*scale)
        r = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        w, h = int(round(math.sqrt(a * r))), int(round(math.sqrt(a / r)))
        if 0 < w <= W and 0 < h <= H:
            return int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1)), h, w
    s = min(H, W)
    return (H - s) // 2, (W - s) // 2, s, s


GRAY = np.float32([0.299, 0.587, 0.114])


def colour_jitter(img: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    """Brightness, contrast, saturation (in that order) with factors in 1 +- amount, drawn from rng."""
    return jitter_frame(img, [rng.uniform(1 - amount, 1 + amount) for _ in range(3)])


def jitter_frame(img: np.ndarray, factors) -> np.ndarray:
    """Brightness, contrast, saturation by the factors (b, c, s).

    The three are affine in the pixel with no clipping in between, so they compose into one 3x4 colour
    matrix applied by cv2.transform in a single uint8 pass (x' = A x + B gray(x) + C).
    """
    b, c, s = (float(v) for v in factors)
    mean = b * float(np.dot(cv2.mean(img)[:3], GRAY))  # contrast pivots on the brightened mean grey
    A, B, C = s * c * b, (1 - s) * c * b, (1 - c) * mean
    m = np.zeros((3, 4), np.float32)
    m[:, :3] = A * np.eye(3, dtype=np.float32) + B * GRAY[None, :]
    m[:, 3] = C
    return cv2.transform(img, m)


def contiguous(labels: np.ndarray) -> np.ndarray:
    """Relabel to 0..S-1 (a crop may drop superpixels), keeping the order of the ids."""
    present = np.zeros(int(labels.max()) + 1, bool)
    present[labels] = True
    return (np.cumsum(present) - 1).astype(np.int16)[labels]


def draw_params(rng: np.random.Generator, T: int, H: int, W: int, aug: Aug) -> dict:
    """Everything random about a clip's augmentation, in the draw order of the loader path: the flip, then
    per frame its crop box (y, x, h, w) and its jitter factors (brightness, contrast, saturation)."""
    flip = bool(aug.flip and rng.random() < 0.5)
    boxes, jitter = np.zeros((T, 4), np.int64), np.zeros((T, 3)) if aug.jitter > 0 else None
    for t in range(T):
        boxes[t] = crop_box(rng, H, W, aug.scale, aug.ratio)
        if jitter is not None:
            jitter[t] = [rng.uniform(1 - aug.jitter, 1 + aug.jitter) for _ in range(3)]
    return {"flip": flip, "boxes": boxes, "jitter": jitter}


def augment(frames: np.ndarray, labels: np.ndarray | None, rng: np.random.Generator, aug: Aug):
    """Per-frame random resized crop + resize, per-clip flip, per-frame colour jitter.

    The spatial ops hit frame t and label map t with the same box (bilinear for pixels, centre-aligned
    nearest for labels); jitter touches pixels only. Returns frames (T, size, size, 3), labels or None.
    train/device_aug.py computes the same for a whole batch on the model's device.
    """
    T, H, W = frames.shape[:3]
    p = draw_params(rng, T, H, W, aug)
    out_f, out_l = [], []
    for t in range(T):
        y, x, h, w = (int(v) for v in p["boxes"][t])
        f = cv2.resize(frames[t, y:y + h, x:x + w], (aug.size, aug.size), interpolation=cv2.INTER_LINEAR)
        if labels is not None:
            l = cv2.resize(labels[t, y:y + h, x:x + w], (aug.size, aug.size), interpolation=cv2.INTER_NEAREST_EXACT)
            out_l.append(contiguous(l[:, ::-1] if p["flip"] else l))
        if p["jitter"] is not None:
            f = jitter_frame(f, p["jitter"][t])
        out_f.append(f[:, ::-1] if p["flip"] else f)
    return np.stack(out_f), (np.stack(out_l) if labels is not None else None)


def clip_index(refs: list[VideoRef], T: int, stride: int, per_video: int = 0) -> tuple[list, list]:
    """(ref, t0) for every clip start; videos shorter than T are returned separately.

    per_video > 0 (CRW's clips per video): (ref, -1 - c) for c < min(per_video, starts): the c-th of
    the video's possibly overlapping starts (stride 1), drawn afresh each epoch (see clip_start).
    """
    clips, short = [], []
    for r in refs:
        if r.length < T:
            short.append(r)
        elif per_video:
            clips += [(r, -1 - c) for c in range(min(per_video, r.length - T + 1))]
        else:
            clips += [(r, t0) for t0 in range(0, r.length - T + 1, stride)]
    return clips, short


_CV2_SINGLE = None  # pid of the loader worker that set OpenCV to one thread


def _one_cv2_thread_in_workers() -> None:
    """In a loader worker OpenCV's own thread pool only contends with the other workers (on a 16-core
    GPU host, 14 workers x 16 OpenCV threads)."""
    global _CV2_SINGLE
    if _CV2_SINGLE != os.getpid() and torch.utils.data.get_worker_info() is not None:
        cv2.setNumThreads(1)
        _CV2_SINGLE = os.getpid()


def clip_start(ref: VideoRef, t0: int, T: int, seed: int, epoch: int) -> int:
    """t0 itself, or for a drawn slot -1 - c the c-th start of a per-(video, epoch) permutation (no repeats)."""
    if t0 >= 0:
        return t0
    rng = np.random.default_rng([seed, epoch, 2**31 + ref.shard, ref.start])
    return int(rng.permutation(ref.length - T + 1)[-1 - t0])


class ClipDataset(torch.utils.data.Dataset):
    """Indexed by (epoch, i): clip i of the index, augmented with the generator of (seed, epoch, i)."""

    def __init__(self, reader: StoreReader, clips: list, T: int, cfgs: list[str], nodes: str,
                 patch_prob: float = 0.7, seed: int = 0, aug: Aug | None = None, stride: int = 8):
        self.reader, self.clips, self.T, self.cfgs = reader, clips, T, cfgs
        self.nodes, self.patch_prob, self.seed = nodes, patch_prob, seed
        self.aug, self.stride = aug or Aug(), stride
        self.keep_labels = False  # benchmarks compare poolings that need the full-resolution maps
        self.on_device = False  # True: return what was read + the drawn parameters (train/device_aug.py)
        self.node_count = 0  # on_device: nodes every batch is padded to (0: the batch's largest stored label)

    def __len__(self):
        return len(self.clips)

    def __getitem__(self, key):
        _one_cv2_thread_in_workers()
        faults.point("train.clip")
        epoch, i = key
        rng = np.random.default_rng([self.seed, epoch, i])
        ref, t0 = self.clips[i]
        t0 = clip_start(ref, t0, self.T, self.seed, epoch)
        patch = self.nodes == "patches" or (self.nodes == "mixed" and rng.random() < self.patch_prob)
        cfg = None if patch else self.cfgs[int(rng.integers(len(self.cfgs)))]
        try:
            frames, labels = self.reader.read_clip(ref, t0, self.T, cfg)
            if self.on_device:
                return self._raw(frames, labels, draw_params(rng, *frames.shape[:3], self.aug), patch)
            frames, labels = augment(frames, labels, rng, self.aug)
        except Exception as e:  # a bad clip drops out of its batch with one line; training goes on
            print(f"[train] skipped clip {ref.video_id}@{t0} (shard {ref.shard}): {type(e).__name__}: {e}", flush=True)
            return None
        weights = None if patch else [overlap_weights(l, self.stride) for l in labels]
        item = {"frames": torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 3, 1, 2))),
                "weights": weights, "patch": patch}
        if self.keep_labels:
            item["labels"] = labels
        return item

    def _raw(self, frames, labels, params: dict, patch: bool) -> dict:
        return {"frames": torch.from_numpy(np.ascontiguousarray(frames)),
                "labels": None if labels is None else torch.from_numpy(np.ascontiguousarray(labels)),
                "n_in": 0 if labels is None else int(labels.max()) + 1, "patch": patch, **params,
                "size": self.aug.size, "stride": self.stride, "nodes": self.node_count}


def collate(items: list) -> dict | None:
    """Stack clips; pad every frame's nodes to the batch maximum M with a mask (weights None: patch clips only).

    Items read for the device path are stacked as read (device_aug.collate_raw)."""
    n_in = len(items)
    items = [it for it in items if it is not None]
    if not items:
        return None
    if "boxes" in items[0]:
        return {**device_aug.collate_raw(items), "dropped": n_in - len(items)}
    sizes = [[n_patches(it["frames"].shape[-1])] * len(it["frames"]) if it["patch"] else [len(w) for w in it["weights"]] for it in items]
    M = max(max(s) for s in sizes)
    B, T = len(items), len(items[0]["frames"])
    H, W = items[0]["frames"].shape[-2:]
    cells = (H // 8) * (W // 8)
    any_sp = not all(it["patch"] for it in items)
    weights = torch.zeros(B, T, M, cells) if any_sp else None
    mask = torch.zeros(B, T, M, dtype=torch.bool)
    for b, it in enumerate(items):
        for t, n in enumerate(sizes[b]):
            mask[b, t, :n] = True
            if not it["patch"]:
                weights[b, t, :n] = torch.from_numpy(it["weights"][t])
    return {"frames": torch.stack([it["frames"] for it in items]), "weights": weights, "mask": mask,
            "patch": torch.tensor([it["patch"] for it in items]), "dropped": n_in - len(items)}


class StreamSampler(torch.utils.data.Sampler):
    """Endless (epoch, i) stream: a fresh permutation per epoch, this rank's slice, from position `start`."""

    def __init__(self, n: int, seed: int, start: int = 0, rank: int = 0, world: int = 1):
        self.n, self.seed, self.start, self.rank, self.world = n, seed, start, rank, world
        self.per_rank = n // world

    def __iter__(self):
        pos = self.start
        while True:
            epoch, off = divmod(pos, self.per_rank)
            perm = np.random.default_rng([self.seed, 10**6 + epoch]).permutation(self.n)
            for i in perm[self.rank::self.world][off:self.per_rank]:
                yield (epoch, int(i))
            pos = (epoch + 1) * self.per_rank
