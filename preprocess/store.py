"""The store format, writer and reader side by side.

STORE/shard-00007/                one folder per manifest shard, written by one task at a time
    frames/<gen>/                 a generation of the frames: a Zarr v3 group (attrs: shard, per-video index)
        frames                    uint8 (N, H, W, 3), JPEG per frame, frames of all videos concatenated
        _done_frames.json         its commit marker + stats, fps, size and lineage (written last)
    labels/<cfg>/<gen>/           a generation of one label configuration: a Zarr v3 group
        labels                    int16 (N, H, W), contiguous 0..S-1 per frame, lossless (zstd)
        nseg                      int16 (N,), S per frame
        _done_<cfg>.json          its commit marker + stats and the frames lineage the maps were computed on
<gen> = NNNNNN-<token>-<pid>@<host>: every attempt writes a generation of its own and commits it by its
marker (preprocess/generations.py, the one home of a generation's life: where a unit lives, which
generation counts, reserve, commit, copy, prune; this module writes and reads the arrays inside one).
A reader follows, per unit, the highest-numbered generation holding its
marker; label maps count only while their marker's lineage equals the followed frames' (a --retry-failed
append keeps the lineage, a decode starts a new one). Nothing else in the shard folder is data.
Claims (one writer per shard) live beside the shards: STORE/shard-00007.lease (preprocess.lease).
"""
from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr
from zarr.codecs import BloscCodec, BytesCodec, ZstdCodec
from zarr.registry import register_codec

from spixwalk import faults
from . import generations as gens
# re-exported: a generation's life has its home in generations.py; these names were the store's first
from .generations import (FRAMES_MARKER, frames_gen, label_configs, labels_gen, labels_marker,  # noqa: F401
                          new_frames_gen, new_labels_gen, prune, read_marker, units)
from .jpegcodec import NAME as JPEG_NAME
from .jpegcodec import JpegCodec
from .spconfig import FRAME_SIZE
from .spconfig import SLIC_ITERATIONS, config_name  # noqa: F401  (re-exported: their home is spconfig)

FRAMES_PER_SHARD_CHUNK = 64  # frames per zarr shard file: few files, one call per clip, partial reads


# ---------------------------------------------------------------- JPEG codec for Zarr v3
# (its own module so zarr's entry point can load it without this one; registered here as well for
# environments where the package's entry points are not installed: the same class, spixwalk.preprocess.
# jpegcodec.JpegCodec, as the entry point's, so zarr holds one implementation)
register_codec(JPEG_NAME, JpegCodec)


# ---------------------------------------------------------------- names and paths


def shard_path(root, shard: int) -> Path:
    return Path(root) / f"shard-{shard:05d}"


def check_layout(sp: Path) -> None:
    """A shard written before generations (arrays at its top) would read as empty: say so instead."""
    if (Path(sp) / "zarr.json").exists() or (Path(sp) / gens.FRAMES_MARKER).exists():
        raise ValueError(f"{sp}: written by an older spixwalk (arrays at the shard's top, no generations); "
                         f"preprocess into a new --store")


def remove_leftovers(sp: Path) -> int:
    """Temp files of writers killed mid-write (marker temps, zarr's *.partial); call under the shard's lease."""
    n = 0
    for p in [*Path(sp).rglob("*.tmp-*"), *Path(sp).rglob("*.partial")]:
        p.unlink(missing_ok=True)
        n += 1
    return n


def _fsync_tree(path: Path) -> None:
    for dirpath, _, files in os.walk(path):
        for name in files:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def library_versions() -> dict:
    import cv2
    import imagecodecs
    import skimage

    return {
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "zarr": zarr.__version__,
        "imagecodecs": imagecodecs.__version__,
        "scikit-image": skimage.__version__,
        "opencv": cv2.__version__,
    }


# ---------------------------------------------------------------- writer
# Written one video at a time (arrays grow by resize): a task's memory is one video, not one shard.


def _create(group, name, shape, dtype, inner, codecs, attrs):
    # fixed outer chunk: arrays grow video by video, so the shard file size cannot depend on the total
    outer = (FRAMES_PER_SHARD_CHUNK,) + tuple(shape[1:])
    return group.create_array(
        name,
        shape=shape,
        dtype=dtype,
        shards=outer,
        chunks=inner,
        serializer=codecs[0],
        compressors=codecs[1:] or None,
        attributes=attrs,
        fill_value=0,
        overwrite=True,
    )


def frames_meta(sp: Path) -> dict | None:
    """fps/size/JPEG quality the committed frames of a shard were stored at (marker, else array metadata)."""
    fg = gens.frames_gen(sp)
    if fg is None:
        return None
    attrs = json.loads((fg[0] / "frames" / "zarr.json").read_text()).get("attributes", {})
    q = re.fullmatch(r"jpeg q(\d+)", str(attrs.get("codec", "")))
    return {"fps": fg[1].get("fps", attrs.get("fps")), "size": fg[1].get("size", attrs.get("size")),
            "quality": int(q[1]) if q else None}


class FramesWriter:
    """Frames of one shard into a generation of its own (new_frames_gen): add(video) ... -> finish (index,
    fsync, marker last: the commit).

    base = the committed frames generation to extend (--retry-failed): its data are copied in first and
    its lineage kept, so label maps computed on it stay valid for the videos they cover.
    """

    def __init__(self, gen: Path, shard: int, size: int, fps: float, quality: int = 90, attrs: dict | None = None,
                 base: tuple[Path, dict] | None = None):
        self.gen, self.shard, self.fps, self.size = Path(gen), shard, fps, size
        faults.point("frames.create")
        if base is not None:
            gens.copy_into(base[0], self.gen, gens.FRAMES_MARKER)
            self.lineage = base[1]["lineage"]
            self.g = zarr.open_group(self.gen, mode="r+")
            self.index = list(self.g.attrs["videos"])
            self.a = self.g["frames"]
            return
        self.lineage = self.gen.name  # a decode starts a lineage of its own
        self.g = zarr.open_group(self.gen, mode="w", zarr_format=3)
        self.g.attrs.update({"shard": shard, "videos": []})
        self.index = []
        self.a = _create(self.g, "frames", (0, size, size, 3), "uint8", (1, size, size, 3),
                         [JpegCodec(quality=quality)],
                         {**(attrs or {}), "fps": fps, "size": size, "codec": f"jpeg q{quality}",
                          "libraries": library_versions()})

    def add(self, vid: str, arr: np.ndarray, path: str | None = None) -> None:
        faults.point("frames.array")
        start = int(self.a.shape[0])
        self.a.resize((start + len(arr),) + self.a.shape[1:])
        self.a[start:] = arr
        self.index.append({"id": vid, "start": start, "length": int(len(arr)), "fps": self.fps, "path": path})

    def finish(self, failed: list) -> dict:
        faults.point("frames.attrs")
        self.g.attrs["videos"] = self.index
        self.a.attrs["video_ids"] = [v["id"] for v in self.index]
        _fsync_tree(self.gen)
        m = {"shard": self.shard, "ok": [v["id"] for v in self.index], "failed": failed,
             "frames": int(self.a.shape[0]), "fps": self.fps, "size": self.size, "lineage": self.lineage}
        gens.commit_frames(self.gen, m)
        return m


def write_frames(root, shard: int, videos: list, attrs: dict, failed: list, *, quality: int = 90,
                 fps: float | None = None, paths: dict | None = None) -> None:
    """Write a shard's frames (videos = [(video_id, uint8 (n,H,W,3))]) as a new generation, committed last.

    New frames start a new lineage: label maps of earlier frames no longer count.
    """
    size = int(videos[0][1].shape[1]) if videos else int(attrs.get("size", FRAME_SIZE))
    w = FramesWriter(gens.new_frames_gen(shard_path(root, shard)), shard, size, fps, quality, attrs)
    for vid, arr in videos:
        w.add(vid, arr, (paths or {}).get(vid))
    w.finish(failed)
    gens.prune(shard_path(root, shard))


class LabelsWriter:
    """Label maps of one configuration into a generation of its own (new_labels_gen), video by video;
    finish() writes the marker last (the commit).

    frames = the committed frames generation (frames_gen) the maps are computed on. base = a committed
    labels generation of the same lineage to extend: the labels of the videos its marker lists (ok or
    failed) are kept, the arrays grown to the current frames index; put() then fills the others.
    """

    def __init__(self, gen: Path, frames: tuple[Path, dict], cfg: str, attrs: dict,
                 base: tuple[Path, dict] | None = None):
        self.gen, self.cfg, self.lineage = Path(gen), cfg, frames[1]["lineage"]
        fg = zarr.open_group(frames[0], mode="r")
        self.frames, self.index, self.shard = fg["frames"], fg.attrs["videos"], frames[1]["shard"]
        n, size = sum(v["length"] for v in self.index), tuple(self.frames.shape[1:3])
        self.done = set(base[1]["ok"]) if base else set()
        self.failed = list(base[1]["failed"]) if base else []
        faults.point("labels.create")
        if base:
            gens.copy_into(base[0], self.gen, gens.labels_marker(cfg))
            self.g = zarr.open_group(self.gen, mode="r+")
            self.la, self.na = self.g["labels"], self.g["nseg"]
            self.la.resize((n,) + size)
            self.na.resize((n,))
            return
        self.g = zarr.open_group(self.gen, mode="w", zarr_format=3)
        meta = {**attrs, "config": cfg, "libraries": library_versions()}
        zstd = [BytesCodec(), BloscCodec(cname="zstd", clevel=5, shuffle="shuffle")]
        self.la = _create(self.g, "labels", (n,) + size, "int16", (1,) + size, zstd, meta)
        self.na = self.g.create_array(
            "nseg", shape=(n,), dtype="int16", chunks=(FRAMES_PER_SHARD_CHUNK,), compressors=ZstdCodec(level=5),
            attributes=meta, fill_value=0, overwrite=True)

    def todo(self, retry_failed: bool = False) -> list[dict]:
        """Videos of the index whose labels are missing (and, with retry_failed, those that failed)."""
        bad = {f["id"] for f in self.failed}
        return [v for v in self.index if v["id"] not in self.done and (retry_failed or v["id"] not in bad)]

    def put(self, v: dict, lab: np.ndarray | None, nseg: np.ndarray | None, error: dict | None = None) -> None:
        self.failed = [f for f in self.failed if f["id"] != v["id"]]
        if error is not None:
            self.failed.append(error)
            return
        faults.point("labels.array")
        a, b = v["start"], v["start"] + v["length"]
        self.la[a:b] = lab.astype(np.int16)
        self.na[a:b] = nseg.astype(np.int16)
        self.done.add(v["id"])

    def finish(self) -> dict:
        bad = {f["id"] for f in self.failed}
        ok = [v for v in self.index if v["id"] in self.done and v["id"] not in bad]
        ns = np.concatenate([self.na[v["start"]:v["start"] + v["length"]] for v in ok]) if ok else np.zeros(0)
        ids = [v["id"] for v in self.index]
        faults.point("labels.attrs")
        self.la.attrs["video_ids"] = ids
        self.na.attrs["video_ids"] = ids
        _fsync_tree(self.gen)
        m = {"shard": self.shard, "config": self.cfg, "failed": self.failed, "ok": [v["id"] for v in ok],
             "frames": int(self.la.shape[0]), "nseg_min": int(ns.min()) if len(ns) else None,
             "nseg_max": int(ns.max()) if len(ns) else None, "lineage": self.lineage}
        gens.commit_labels(self.gen, self.cfg, m)
        return m


def write_labels(root, shard: int, cfg: str, labels: list, attrs: dict, failed: list,
                 *, nseg: list | None = None) -> None:
    """Write one label configuration of a shard (labels per video, same order as the frames index).

    A video whose labels failed must still fill its slot (any int16 array of the right length) and
    be named in `failed`; readers skip it.
    """
    sp = shard_path(root, shard)
    fg = gens.frames_gen(sp)
    if fg is None:
        raise RuntimeError(f"{sp}: frames are not complete; write labels after frames")
    w = LabelsWriter(gens.new_labels_gen(sp, cfg), fg, cfg, attrs)
    if len(labels) != len(w.index) or any(len(l) != v["length"] for l, v in zip(labels, w.index)):
        raise ValueError(f"{sp}/{cfg}: label maps do not match the frames index")
    bad = {f["id"]: f for f in failed}
    for k, (v, lab) in enumerate(zip(w.index, labels)):
        ns = nseg[k] if nseg is not None else np.array([len(np.unique(f)) for f in lab], np.int16)
        w.put(v, lab, ns)
        if v["id"] in bad:
            w.put(v, None, None, bad[v["id"]])
    w.finish()
    gens.prune(sp)


# ---------------------------------------------------------------- reader


@dataclass(frozen=True)
class VideoRef:
    shard: int
    video_id: str
    start: int
    length: int


class StoreReader:
    """Read-only view of a store. Picklable: zarr handles are opened lazily in each process.

    label_cache_mb > 0: where every shard's label maps of a configuration fit in that many MB (as uint8
    when no frame has 256 superpixels or more), each process reads a shard's maps once, in one call, and
    serves clips from memory: a clip's label read is one zarr call per frame-chunk, mostly call overhead
    for ~1.5 KB per frame. Larger stores keep reading per clip (an LRU would thrash under random clips).
    """

    def __init__(self, root, label_cache_mb: float = 0, generations: dict | None = None):
        self.root, self.label_cache_mb = Path(root), label_cache_mb
        self._gens = dict(generations or {})  # (shard, cfg or None) -> committed (folder, marker) or None
        self._groups, self._arrays = {}, {}
        self._labels, self._cache_fits = {}, {}
        self._pid = None

    def __getstate__(self):
        # the generations already followed travel along: a worker reads exactly what its parent indexed
        return {"root": self.root, "label_cache_mb": self.label_cache_mb, "generations": self._gens}

    def __setstate__(self, state):
        self.__init__(state["root"], state.get("label_cache_mb", 0), state.get("generations"))

    def shards(self) -> list[int]:
        found = sorted(p for p in self.root.glob("shard-[0-9]*") if p.is_dir())
        for p in found:
            check_layout(p)
        return [int(p.name[6:]) for p in found]

    def _resolve(self, shard: int, cfg: str | None = None, frames=None) -> tuple[Path, dict] | None:
        """Look the committed generation of a shard's frames (cfg None) or cfg's label maps up again; the one
        followed before is forgotten, with its open arrays, if a later commit outranked it."""
        sp = shard_path(self.root, shard)
        got = gens.labels_gen(sp, cfg, frames or self._resolve(shard)) if cfg else gens.frames_gen(sp)
        if self._gens.get((shard, cfg), got) != got:
            self._groups.pop((shard, cfg), None)
            names = ["frames"] if cfg is None else [f"labels/{cfg}", f"nseg/{cfg}"]
            for k in [(shard, n) for n in names]:
                self._arrays.pop(k, None)
            self._labels.pop((shard, cfg), None)
        self._gens[(shard, cfg)] = got
        return got

    def _gen(self, shard: int, cfg: str | None = None) -> tuple[Path, dict] | None:
        """The generation read from: the one last looked up (a pickled reader's workers read what it indexed)."""
        return self._gens[(shard, cfg)] if (shard, cfg) in self._gens else self._resolve(shard, cfg)

    def _complete(self, shard: int, cfg: str | None = None) -> dict | None:
        got = self._resolve(shard, cfg)
        return got[1] if got else None

    def configs(self) -> list[str]:
        found = set()
        for s in self.shards():
            fg = self._resolve(s)
            for c in (gens.label_configs(shard_path(self.root, s), fg) if fg else {}):
                if self._resolve(s, c, fg):
                    found.add(c)
        return sorted(found)

    def _group(self, shard: int, cfg: str | None = None):
        if self._pid != os.getpid():  # after fork/spawn: do not share zarr handles across processes
            self._groups, self._arrays, self._labels, self._pid = {}, {}, {}, os.getpid()
        if (shard, cfg) not in self._groups:
            self._groups[(shard, cfg)] = zarr.open_group(self._gen(shard, cfg)[0], mode="r")
        return self._groups[(shard, cfg)]

    def videos(self, cfg: str | None = None) -> list[VideoRef]:
        out = []
        for s in self.shards():
            if self._complete(s) is None:
                continue
            bad, ok = set(), None
            if cfg is not None:
                m = self._complete(s, cfg)
                if m is None:
                    continue
                bad = {f["id"] for f in m.get("failed", [])}
                ok = set(m["ok"]) if "ok" in m else None  # videos added after these labels lack them
            for v in self._group(s).attrs["videos"]:
                if v["id"] not in bad and (cfg is None or ok is None or v["id"] in ok):
                    out.append(VideoRef(s, v["id"], v["start"], v["length"]))
        return out

    def read_clip(self, ref: VideoRef, t0: int, T: int, cfg: str | None = None):
        if t0 < 0 or t0 + T > ref.length:
            raise IndexError(f"{ref.video_id}: frames {t0}..{t0 + T - 1} outside 0..{ref.length - 1}")
        a, b = ref.start + t0, ref.start + t0 + T
        frames = self._array(ref.shard, "frames")[a:b]
        if cfg is None:
            return frames, None
        if self._cached(cfg):
            return frames, self._shard_labels(ref.shard, cfg)[a:b].astype(np.int16)
        return frames, self._array(ref.shard, f"labels/{cfg}")[a:b]

    def _cached(self, cfg: str) -> bool:
        if cfg not in self._cache_fits:
            small = 0 < self.nseg_max(cfg) < 256
            total = sum(int(np.prod(self._array(s, f"labels/{cfg}").shape)) * (1 if small else 2)
                        for s in self.shards() if self._complete(s, cfg) is not None)
            self._cache_fits[cfg] = (np.uint8 if small else np.int16) if 0 < total <= self.label_cache_mb * 2**20 else None
        return self._cache_fits[cfg] is not None

    def _shard_labels(self, shard: int, cfg: str) -> np.ndarray:
        self._group(shard)  # drops the cache of a parent process after fork
        if (shard, cfg) not in self._labels:
            self._labels[(shard, cfg)] = self._array(shard, f"labels/{cfg}")[:].astype(self._cache_fits[cfg])
        return self._labels[(shard, cfg)]

    def _array(self, shard: int, name: str):
        """An open array of a shard ("frames", "labels/<cfg>", "nseg/<cfg>"), kept: opening reads and parses
        its zarr.json, which cost as much as reading a clip's data."""
        key = (shard, name)
        g = self._group(shard) if name == "frames" else self._group(shard, name.split("/", 1)[1])
        if key not in self._arrays:
            self._arrays[key] = g[name.split("/", 1)[0]]
        return self._arrays[key]

    def nseg(self, ref: VideoRef, cfg: str) -> np.ndarray:
        return self._array(ref.shard, f"nseg/{cfg}")[ref.start:ref.start + ref.length]

    def nseg_max(self, cfg: str) -> int:
        """Most superpixels in any frame of cfg, from the shards' markers (0 where none records it)."""
        ms = [self._complete(s, cfg) for s in self.shards() if self._complete(s) is not None]
        return max([int(m.get("nseg_max") or 0) for m in ms if m] or [0])

    def video_info(self, shard: int) -> list[dict]:
        return list(self._group(shard).attrs["videos"])
