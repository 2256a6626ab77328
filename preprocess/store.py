"""The store format, writer and reader side by side.

STORE/shard-00007/            one Zarr v3 group per manifest shard, written by exactly one task
    frames                    uint8 (N, H, W, 3), JPEG per frame, frames of all videos concatenated
    labels/<cfg>              int16 (N, H, W), contiguous 0..S-1 per frame, lossless (zstd)
    nseg/<cfg>                int16 (N,), S per frame
    _done_frames.json         completion marker + stats, fps and size (written last, temp + rename)
    _done_<cfg>.json          one marker per label configuration
The group attributes hold the per-video index (id, start, length, fps, path).
Claims (one writer per shard) live beside the shards: STORE/shard-00007.lease (preprocess.lease).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr
from zarr.codecs import BloscCodec, BytesCodec, ZstdCodec
from zarr.registry import register_codec

from spixwalk.common import write_atomic

from .jpegcodec import NAME as JPEG_NAME
from .jpegcodec import JpegCodec
from .spconfig import FRAME_SIZE
from .spconfig import SLIC_ITERATIONS, config_name  # noqa: F401  (re-exported: their home is spconfig)

FRAMES_MARKER = "_done_frames.json"
FRAMES_PER_SHARD_CHUNK = 64  # frames per zarr shard file: few files, one call per clip, partial reads


# ---------------------------------------------------------------- JPEG codec for Zarr v3
# (its own module so zarr's entry point can load it without this one; registered here as well for
# environments where the package's entry points are not installed: the same class, spixwalk.preprocess.
# jpegcodec.JpegCodec, as the entry point's, so zarr holds one implementation)
register_codec(JPEG_NAME, JpegCodec)


# ---------------------------------------------------------------- names and paths


def shard_path(root, shard: int) -> Path:
    return Path(root) / f"shard-{shard:05d}"


def labels_marker(cfg: str) -> str:
    return f"_done_{cfg}.json"


def read_marker(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _write_marker(path: Path, payload: dict) -> None:
    # temp + fsync + rename: the marker appears whole or not at all, and only after the data
    write_atomic(path, json.dumps(payload, indent=1, sort_keys=True))


def remove_leftovers(sp: Path) -> int:
    """Temp files of writers killed mid-write (marker temps, zarr's *.partial); call under the shard's lease."""
    n = 0
    for p in [*Path(sp).glob("*.tmp-*"), *Path(sp).rglob("*.partial")]:
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
    """fps/size/JPEG quality the frames of a complete shard were stored at (marker, else array metadata)."""
    m = read_marker(sp / FRAMES_MARKER)
    if m is None:
        return None
    attrs = json.loads((sp / "frames" / "zarr.json").read_text()).get("attributes", {})
    q = re.fullmatch(r"jpeg q(\d+)", str(attrs.get("codec", "")))
    return {"fps": m.get("fps", attrs.get("fps")), "size": m.get("size", attrs.get("size")),
            "quality": int(q[1]) if q else None}


class FramesWriter:
    """begin (wipes the shard) -> add(video) ... -> finish (index, fsync, marker last).

    Also reopens a complete shard to append videos (--retry-failed); its marker is removed until the
    new one is written, so a reader never sees an index that runs past the data.
    """

    def __init__(self, root, shard: int, size: int, fps: float, quality: int = 90, attrs: dict | None = None,
                 append: bool = False):
        self.root, self.shard, self.fps, self.size = root, shard, fps, size
        self.sp = shard_path(root, shard)
        if append:
            self.g = zarr.open_group(self.sp, mode="r+")
            self.index = list(self.g.attrs["videos"])
            self.a = self.g["frames"]
            return
        if self.sp.exists():
            shutil.rmtree(self.sp)
        self.sp.mkdir(parents=True)
        self.g = zarr.open_group(self.sp, mode="w", zarr_format=3)
        self.g.attrs.update({"shard": shard, "videos": []})
        self.index = []
        self.a = _create(self.g, "frames", (0, size, size, 3), "uint8", (1, size, size, 3),
                         [JpegCodec(quality=quality)],
                         {**(attrs or {}), "fps": fps, "size": size, "codec": f"jpeg q{quality}",
                          "libraries": library_versions()})

    def add(self, vid: str, arr: np.ndarray, path: str | None = None) -> None:
        start = int(self.a.shape[0])
        self.a.resize((start + len(arr),) + self.a.shape[1:])
        self.a[start:] = arr
        self.index.append({"id": vid, "start": start, "length": int(len(arr)), "fps": self.fps, "path": path})

    def finish(self, failed: list) -> None:
        self.g.attrs["videos"] = self.index
        self.a.attrs["video_ids"] = [v["id"] for v in self.index]
        _fsync_tree(self.sp)
        _write_marker(self.sp / FRAMES_MARKER, {"shard": self.shard, "ok": [v["id"] for v in self.index],
                                                "failed": failed, "frames": int(self.a.shape[0]),
                                                "fps": self.fps, "size": self.size})


def write_frames(root, shard: int, videos: list, attrs: dict, failed: list, *, quality: int = 90,
                 fps: float | None = None, paths: dict | None = None) -> None:
    """Write a shard's frames (videos = [(video_id, uint8 (n,H,W,3))]) and then its frames marker.

    Any previous content of the shard is removed first: new frames invalidate its label maps.
    """
    size = int(videos[0][1].shape[1]) if videos else int(attrs.get("size", FRAME_SIZE))
    w = FramesWriter(root, shard, size, fps, quality, attrs)
    for vid, arr in videos:
        w.add(vid, arr, (paths or {}).get(vid))
    w.finish(failed)


class LabelsWriter:
    """Label maps of one configuration, video by video; the marker is written last by finish().

    keep=True keeps the labels already stored for videos the old marker lists (ok or failed) and
    grows the arrays to the current frames index; put() then only fills the videos that lack labels.
    """

    def __init__(self, root, shard: int, cfg: str, attrs: dict, keep: bool = False):
        self.root, self.shard, self.cfg = root, shard, cfg
        self.sp = shard_path(root, shard)
        if read_marker(self.sp / FRAMES_MARKER) is None:
            raise RuntimeError(f"{self.sp}: frames are not complete; write labels after frames")
        old = read_marker(self.sp / labels_marker(cfg)) if keep else None
        (self.sp / labels_marker(cfg)).unlink(missing_ok=True)
        self.g = zarr.open_group(self.sp, mode="r+")
        self.index = self.g.attrs["videos"]
        n = sum(v["length"] for v in self.index)
        size = tuple(self.g["frames"].shape[1:3])
        self.done = set(old["ok"]) if old else set()
        self.failed = [f for f in old["failed"]] if old else []
        if old:
            self.la, self.na = self.g["labels"][cfg], self.g["nseg"][cfg]
            self.la.resize((n,) + size)
            self.na.resize((n,))
            return
        meta = {**attrs, "config": cfg, "libraries": library_versions()}
        zstd = [BytesCodec(), BloscCodec(cname="zstd", clevel=5, shuffle="shuffle")]
        self.la = _create(self.g.require_group("labels"), cfg, (n,) + size, "int16", (1,) + size, zstd, meta)
        self.na = self.g.require_group("nseg").create_array(
            cfg, shape=(n,), dtype="int16", chunks=(FRAMES_PER_SHARD_CHUNK,), compressors=ZstdCodec(level=5),
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
        a, b = v["start"], v["start"] + v["length"]
        self.la[a:b] = lab.astype(np.int16)
        self.na[a:b] = nseg.astype(np.int16)
        self.done.add(v["id"])

    def finish(self) -> dict:
        bad = {f["id"] for f in self.failed}
        ok = [v for v in self.index if v["id"] in self.done and v["id"] not in bad]
        ns = np.concatenate([self.na[v["start"]:v["start"] + v["length"]] for v in ok]) if ok else np.zeros(0)
        ids = [v["id"] for v in self.index]
        self.la.attrs["video_ids"] = ids
        self.na.attrs["video_ids"] = ids
        _fsync_tree(self.sp / "labels" / self.cfg)
        _fsync_tree(self.sp / "nseg" / self.cfg)
        m = {"shard": self.shard, "config": self.cfg, "failed": self.failed, "ok": [v["id"] for v in ok],
             "frames": int(self.la.shape[0]), "nseg_min": int(ns.min()) if len(ns) else None,
             "nseg_max": int(ns.max()) if len(ns) else None}
        _write_marker(self.sp / labels_marker(self.cfg), m)
        return m


def write_labels(root, shard: int, cfg: str, labels: list, attrs: dict, failed: list,
                 *, nseg: list | None = None) -> None:
    """Write one label configuration of a shard (labels per video, same order as the frames index).

    A video whose labels failed must still fill its slot (any int16 array of the right length) and
    be named in `failed`; readers skip it.
    """
    w = LabelsWriter(root, shard, cfg, attrs)
    if len(labels) != len(w.index) or any(len(l) != v["length"] for l, v in zip(labels, w.index)):
        raise ValueError(f"{w.sp}/{cfg}: label maps do not match the frames index")
    bad = {f["id"]: f for f in failed}
    for k, (v, lab) in enumerate(zip(w.index, labels)):
        ns = nseg[k] if nseg is not None else np.array([len(np.unique(f)) for f in lab], np.int16)
        w.put(v, lab, ns)
        if v["id"] in bad:
            w.put(v, None, None, bad[v["id"]])
    w.finish()


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

    def __init__(self, root, label_cache_mb: float = 0):
        self.root, self.label_cache_mb = Path(root), label_cache_mb
        self._groups, self._arrays = {}, {}
        self._labels, self._cache_fits = {}, {}
        self._pid = None

    def __getstate__(self):
        return {"root": self.root, "label_cache_mb": self.label_cache_mb}

    def __setstate__(self, state):
        self.__init__(state["root"], state.get("label_cache_mb", 0))

    def shards(self) -> list[int]:
        return sorted(int(p.name[6:]) for p in self.root.glob("shard-[0-9]*") if p.is_dir())

    def _complete(self, shard: int, cfg: str | None = None) -> dict | None:
        return read_marker(shard_path(self.root, shard) / (labels_marker(cfg) if cfg else FRAMES_MARKER))

    def configs(self) -> list[str]:
        found = set()
        for s in self.shards():
            if self._complete(s) is None:
                continue
            for p in shard_path(self.root, s).glob("_done_*.json"):
                if p.name != FRAMES_MARKER:
                    found.add(p.name[len("_done_"):-len(".json")])
        return sorted(found)

    def _group(self, shard: int):
        if self._pid != os.getpid():  # after fork/spawn: do not share zarr handles across processes
            self._groups, self._arrays, self._labels, self._pid = {}, {}, {}, os.getpid()
        if shard not in self._groups:
            self._groups[shard] = zarr.open_group(shard_path(self.root, shard), mode="r")
        return self._groups[shard]

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
        """An open array of a shard, kept: opening reads and parses its zarr.json, which cost as much as
        reading a clip's data."""
        g = self._group(shard)
        key = (shard, name)
        if key not in self._arrays:
            self._arrays[key] = g[name]
        return self._arrays[key]

    def nseg(self, ref: VideoRef, cfg: str) -> np.ndarray:
        return self._group(ref.shard)["nseg"][cfg][ref.start:ref.start + ref.length]

    def nseg_max(self, cfg: str) -> int:
        """Most superpixels in any frame of cfg, from the shards' markers (0 where none records it)."""
        ms = [self._complete(s, cfg) for s in self.shards() if self._complete(s) is not None]
        return max([int(m.get("nseg_max") or 0) for m in ms if m] or [0])

    def video_info(self, shard: int) -> list[dict]:
        return list(self._group(shard).attrs["videos"])
