"""Synthetic DAVIS-2017-format sequences with exact masks, for tests and the embedded demo set.

Each sequence: a textured background that pans, and several textured objects (ellipses and
polygons) that move, grow and shrink, and pass in front of each other in a fixed depth order. The
annotation of a pixel is the topmost object covering it; a thin void (255) ring surrounds object 1,
as DAVIS-2017 marks uncertain boundaries. Deterministic for a given seed.
"""
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from .davis_io import save_indexed, write_listing


def _texture(rng, h, w, cells=8) -> np.ndarray:
    """Smooth random colour field plus fine noise and stripes (uint8 h x w x 3)."""
    coarse = rng.uniform(0, 255, (cells, cells, 3)).astype(np.float32)
    tex = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[0:h, 0:w]
    angle, period = rng.uniform(0, np.pi), rng.uniform(6, 20)
    stripes = 30 * np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)
    tex += stripes[..., None] + rng.normal(0, 8, (h, w, 3))
    return np.clip(tex, 0, 255).astype(np.uint8)


def _shape_mask(rng, size: int) -> np.ndarray:
    """Binary object shape in a size x size box: an ellipse or a random star-like polygon."""
    m = np.zeros((size, size), np.uint8)
    c = size // 2
    if rng.random() < 0.5:
        axes = (int(c * rng.uniform(0.6, 0.95)), int(c * rng.uniform(0.4, 0.95)))
        cv2.ellipse(m, (c, c), axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    else:
        n = int(rng.integers(5, 9))
        ang = np.sort(rng.uniform(0, 2 * np.pi, n))
        rad = c * rng.uniform(0.5, 0.95, n)
        pts = np.stack([c + rad * np.cos(ang), c + rad * np.sin(ang)], 1).astype(np.int32)
        cv2.fillPoly(m, [pts], 1)
    return m


def make_sequence(rng, n_frames: int, height: int, width: int, n_objects: int):
    """Yields (frame uint8 HxWx3, annotation uint8 HxW) per frame."""
    pad = 64
    bg = _texture(rng, height + 2 * pad, width + 2 * pad, cells=6)
    bg_v = rng.uniform(-1.5, 1.5, 2)
    base = int(min(height, width) * 0.45)
    objs = []
    for k in range(n_objects):
        size = int(base * rng.uniform(0.7, 1.1))
        objs.append({
            "shape": _shape_mask(rng, size),
            "tex": _texture(rng, size, size, cells=4),
            # start spread along the diagonal so every object is visible in the first frame
            "pos": np.array([(k + 0.5) / n_objects * height, (k + 0.5) / n_objects * width]) + rng.normal(0, 5, 2),
            "vel": rng.uniform(-4, 4, 2) * [height / 240, width / 432],
            "scale_freq": rng.uniform(0.05, 0.15),
            "scale_amp": rng.uniform(0.1, 0.3),
        })
    for t in range(n_frames):
        oy = int(np.clip(pad + bg_v[0] * t, 0, 2 * pad))
        ox = int(np.clip(pad + bg_v[1] * t, 0, 2 * pad))
        frame = bg[oy:oy + height, ox:ox + width].copy()
        ann = np.zeros((height, width), np.uint8)
        for k, o in enumerate(objs, start=1):
            s = 1.0 + o["scale_amp"] * np.sin(2 * np.pi * o["scale_freq"] * t)
            size = max(8, int(o["shape"].shape[0] * s))
            shape = cv2.resize(o["shape"], (size, size), interpolation=cv2.INTER_NEAREST).astype(bool)
            tex = cv2.resize(o["tex"], (size, size), interpolation=cv2.INTER_LINEAR)
            pos = o["pos"] + o["vel"] * t
            # bounce off the frame edges
            for d, lim in ((0, height), (1, width)):
                period = 2 * lim
                p = pos[d] % period
                pos[d] = p if p < lim else period - p
            y0, x0 = int(pos[0]) - size // 2, int(pos[1]) - size // 2
            ys, xs = slice(max(y0, 0), min(y0 + size, height)), slice(max(x0, 0), min(x0 + size, width))
            sub = (slice(ys.start - y0, ys.stop - y0), slice(xs.start - x0, xs.stop - x0))
            m = shape[sub]
            frame[ys, xs][m] = tex[sub][m]
            ann[ys, xs][m] = k
        ring = cv2.dilate((ann == 1).astype(np.uint8), np.ones((3, 3), np.uint8)) & (ann != 1)
        ann[ring.astype(bool)] = 255
        yield frame, ann


def generate(out, n_sequences=3, n_frames=24, height=240, width=432, n_objects=3, seed=0) -> list[str]:
    """Writes OUT/JPEGImages/480p, OUT/Annotations/480p (palette PNGs), OUT/ImageSets/2017/val.txt."""
    out = Path(out)
    rng = np.random.default_rng(seed)
    names = [f"synth-{i:02d}" for i in range(n_sequences)]
    for name in names:
        jdir, adir = out / "JPEGImages" / "480p" / name, out / "Annotations" / "480p" / name
        jdir.mkdir(parents=True, exist_ok=True)
        adir.mkdir(parents=True, exist_ok=True)
        for t, (frame, ann) in enumerate(make_sequence(rng, n_frames, height, width, n_objects)):
            Image.fromarray(frame).save(jdir / f"{t:05d}.jpg", quality=92)
            save_indexed(ann, adir / f"{t:05d}.png")
    write_listing(out, 2017, "val", names)
    return names
