"""Semi-supervised video object segmentation on a DAVIS-format folder: first-frame mask in,
indexed PNGs for every frame out (DIR/<seq>/<frame>.png, overlays in DIR/<seq>/overlay/)."""
import json
import resource
import shutil
import sys
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from spixwalk.files import replace_dir
from spixwalk.progress import Progress

from .davis_io import (InputError, count_frames, load_frame, load_mask, mask_overlay, mask_path,
                    save_indexed, sequence_frames, sequence_list)
from .propagate import Propagator
from .side_by_side import SideBySide


def first_frame_labels(mask: np.ndarray, hw) -> tuple[np.ndarray, torch.Tensor]:
    """Object ids of the first mask (void counts as background) and their soft labels at feature size:
    the one-hot mask downsampled bilinearly, as CRW does."""
    mask = np.where(mask == 255, 0, mask)
    ids = np.unique(mask)
    if ids[0] != 0:
        ids = np.concatenate([[0], ids])
    if len(ids) < 2:
        raise ValueError("first mask has no object")
    onehot = (mask[..., None] == ids[None, None, :]).astype(np.float32)
    low = cv2.resize(onehot, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR)
    low = low.reshape(hw[0], hw[1], len(ids))
    return ids.astype(np.uint8), torch.from_numpy(low).permute(2, 0, 1).contiguous()


def hard_labels(soft: torch.Tensor, ids: np.ndarray, size) -> np.ndarray:
    """Bilinear upsampling of (K,h,w) soft labels to size (H,W), argmax, mapped to object ids."""
    up = cv2.resize(soft.permute(1, 2, 0).numpy(), (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    up = up.reshape(size[0], size[1], -1)
    return ids[np.argmax(up, axis=-1)]


PREFETCH = 4  # JPEGs decoded ahead of the encoder, in threads (PIL releases the GIL while decoding)


def decoded(paths: list, ahead: int = PREFETCH, scale: float = 1.0):
    """The frames of paths in order (resized by scale), each decoded `ahead` frames before it is needed."""
    with ThreadPoolExecutor(ahead) as pool:
        pending = deque()
        for p in paths:
            pending.append((p, pool.submit(load_frame, p, scale)))
            if len(pending) > ahead:
                path, job = pending.popleft()
                yield path, job.result()
        while pending:
            path, job = pending.popleft()
            yield path, job.result()


def featurized(frames, featurize, size):
    """(path, frame, features) triples; a featurizer with `many` gets `batch` frames per call."""
    batch, many = getattr(featurize, "batch", 1), getattr(featurize, "many", None)

    def flush(buf):
        feats = many([img for _, img in buf]) if many else [featurize(img) for _, img in buf]
        return [(p, img, f) for (p, img), f in zip(buf, feats)]

    buf = []
    for path, img in frames:
        if img.shape[:2] != size:
            raise InputError(f"{path}: frame size {img.shape[:2]} differs from the first frame {size}")
        buf.append((path, img))
        if len(buf) == batch:
            yield from flush(buf)
            buf = []
    if buf:
        yield from flush(buf)


class Writer:
    """PNG writing off the critical path: a few threads, at most `pending` frames queued, the first
    failure raised at the next submit or at close."""

    def __init__(self, threads: int = 2, pending: int = 16):
        self.pool, self.jobs, self.pending = ThreadPoolExecutor(threads), deque(), pending

    def submit(self, fn, *args):
        while self.jobs and (self.jobs[0].done() or len(self.jobs) >= self.pending):
            self.jobs.popleft().result()
        self.jobs.append(self.pool.submit(fn, *args))

    def close(self):
        try:
            while self.jobs:
                self.jobs.popleft().result()
        finally:
            self.pool.shutdown(wait=True)


def _save_frame(tmp: Path, stem: str, img, pred, overlays: bool) -> None:
    save_indexed(pred, tmp / f"{stem}.png")
    if overlays:
        Image.fromarray(mask_overlay(img, pred)).save(tmp / "overlay" / f"{stem}.png", compress_level=1)


class _Sink:
    """Where a sequence's frames go, off the critical path: indexed PNGs and overlays (Writer threads) and,
    with a SideBySide, its mp4 (one thread: frames reach ffmpeg in order). Leaving the block waits for the
    writes; the first failure raises, and a failed sequence keeps no mp4."""

    def __init__(self, tmp: Path, overlays: bool, video: SideBySide | None):
        self.tmp, self.overlays, self.video = tmp, overlays, video
        self.png, self.mp4 = Writer(), (Writer(threads=1) if video else None)

    def first(self, path: Path, img, mask) -> None:
        self.png.submit(save_indexed, mask, self.tmp / f"{path.stem}.png")
        if self.mp4:
            self.mp4.submit(self.video.add, path, img, mask)

    def frame(self, path: Path, img, pred) -> None:
        self.png.submit(_save_frame, self.tmp, path.stem, img, pred, self.overlays)
        if self.mp4:
            self.mp4.submit(self.video.add, path, img, pred)

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        errors = []
        for w in filter(None, (self.png, self.mp4)):  # every pool shut down before the first error is raised
            try:
                w.close()
            except Exception as e:
                errors.append(e)
        if self.video is not None and kind is None and not errors:
            self.video.close()
        elif self.video is not None:
            self.video.abort()
        if errors and kind is None:
            raise errors[0]
        return False


def _propagate(davis, seq, frames, featurize, prop_kwargs, year, sink: _Sink, tick,
               scale: float = 1.0) -> tuple[int, float]:
    """Propagate the first mask through frames (read at `scale`) into sink, tick() once per frame. Returns
    (objects, propagation seconds)."""
    first_mask = load_mask(mask_path(davis, seq, frames[0].stem), year, scale)
    stream = decoded(frames, scale=scale)
    _, img = next(stream)
    size = img.shape[:2]
    if first_mask.shape != size:
        raise InputError(f"{mask_path(davis, seq, frames[0].stem)}: mask size {first_mask.shape} differs "
                         f"from frame size {size}")
    feat = featurize(img)
    try:
        ids, labels0 = first_frame_labels(first_mask, feat.shape[1:])
    except ValueError as e:
        raise InputError(f"{mask_path(davis, seq, frames[0].stem)}: {e}") from None
    prop = Propagator(**(prop_kwargs or {}))
    prop.start(feat, labels0)
    t_prop = 0.0
    sink.first(frames[0], img, np.where(first_mask == 255, 0, first_mask))
    tick()
    for path, img, feat in featurized(stream, featurize, size):
        t1 = time.perf_counter()
        pred = hard_labels(prop.step(feat).cpu(), ids, size)
        t_prop += time.perf_counter() - t1
        sink.frame(path, img, pred)
        tick()
    return len(ids) - 1, t_prop


def propagate_sequence(davis, year, seq, featurize, out: Path, prop_kwargs=None, overlays=True, max_frames=0,
                       tick=lambda: None, video_fps: float = 0, scale: float = 1.0) -> dict:
    """Propagate one sequence, its frames and masks read at `scale`, into out/<seq>/ (written under a temporary
    name, renamed when complete); tick() is called once per frame done; video_fps > 0 adds the side-by-side mp4
    and still."""
    frames = sequence_frames(davis, seq, year, every_frame=False)
    if max_frames:
        frames = frames[:max_frames]
    tmp = out / f".{seq}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "overlay").mkdir(parents=True)
    try:
        t0 = time.perf_counter()
        video = SideBySide(davis, year, seq, tmp, len(frames), video_fps, scale) if video_fps else None
        with _Sink(tmp, overlays, video) as sink:
            n_obj, t_prop = _propagate(davis, seq, frames, featurize, prop_kwargs, year, sink, tick, scale)
        seconds = time.perf_counter() - t0
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    replace_dir(tmp, out / seq)
    n = len(frames)
    return {"sequence": seq, "frames": n, "objects": n_obj, "seconds": seconds,
            "seconds_per_frame": seconds / max(n - 1, 1), "propagation_seconds_per_frame": t_prop / max(n - 1, 1),
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}  # process peak so far


def propagate_dataset(davis, year, out, featurize, subset="val", sequences=None, prop_kwargs=None, overlays=True,
        config=None, progress=True, max_frames=0, video_fps: float = 0, scale: float = 1.0) -> dict:
    names = sequence_list(davis, year, subset, sequences)  # InputError before anything is written
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if config is not None:
        (out / "config.json").write_text(json.dumps(config, indent=1))
    stats, failures = [], []
    counts = {seq: count_frames(davis, seq) for seq in names}
    counts = {seq: min(n, max_frames) if max_frames else n for seq, n in counts.items()}
    with Progress(sum(counts.values()), "propagate", unit="frame", enabled=progress) as bar:
        for seq in names:
            bar.note(sequence=seq)
            start = bar.n
            try:
                stats.append(propagate_sequence(davis, year, seq, featurize, out, prop_kwargs, overlays, max_frames,
                                                tick=bar.update, video_fps=video_fps, scale=scale))
            except InputError as e:
                print(f"error: {e}", file=sys.stderr)
                failures.append({"sequence": seq, "reason": str(e)})
            bar.set(start + counts[seq])  # a failed sequence's frames count as passed
    summary = {"sequences": stats, "failures": failures, "complete": not failures, "eval_scale": scale}
    (out / "propagation.json").write_text(json.dumps(summary, indent=1))
    return summary


def print_summary(summary: dict) -> None:
    print(f"{'sequence':<24}{'frames':>7}{'objects':>8}{'s/frame':>9}{'prop s/frame':>13}{'peak GB':>9}")
    for s in summary["sequences"]:
        print(f"{s['sequence']:<24}{s['frames']:>7}{s['objects']:>8}{s['seconds_per_frame']:>9.3f}"
              f"{s['propagation_seconds_per_frame']:>13.3f}{s['peak_rss_gb']:>9.2f}")
    for f in summary["failures"]:
        print(f"FAILED {f['sequence']}: {f['reason']}")
