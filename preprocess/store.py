"""The store format, writer and reader side by side.

STORE/shard-00007/            one Zarr v3 group per manifest shard, written by exactly one task
    frames                    uint8 (N, H, W, 3), JPEG per frame, frames of all videos concatenated
    labels/<cfg>              int16 (N, H, W), contiguous 0..S-1 per frame, lossless (zstd)
    nseg/<cfg>                int16 (N,), S per frame
    _done_frames.json         completion marker + stats (written last, temp + rename)
    _done_<cfg>.json          one marker per label configuration
The group attributes hold the per-video index (id, start, length, fps, path).
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr
from zarr.abc.codec import ArrayBytesCodec
from zarr.codecs import BloscCodec, BytesCodec, ShardingCodec, ZstdCodec
from zarr.registry import register_codec

from .spconfig import SLIC_ITERATIONS, config_name  # noqa: F401  (re-exported: their home is spconfig)

FRAMES_MARKER = "_done_frames.json"
FRAMES_PER_SHARD_CHUNK = 64  # frames per zarr shard file: few files, one call per clip, partial reads


# ---------------------------------------------------------------- JPEG codec for Zarr v3


@dataclass(frozen=True)
class JpegCodec(ArrayBytesCodec):
    """Array -> JPEG bytes for uint8 (1, H, W, 3) or (1, H, W) chunks (imagecodecs' libjpeg-turbo)."""

    is_fixed_size = False
    quality: int = 90

    @classmethod
    def from_dict(cls, data):
        return cls(**(data.get("configuration") or {}))

    def to_dict(self):
        return {"name": "spixwalk.jpeg", "configuration": {"quality": self.quality}}

    def _decode_sync(self, chunk_bytes, chunk_spec):
        import imagecodecs

        img = imagecodecs.jpeg8_decode(chunk_bytes.as_numpy_array())
        return chunk_spec.prototype.nd_buffer.from_ndarray_like(img.reshape(chunk_spec.shape))

    def _encode_sync(self, chunk_array, chunk_spec):
        import imagecodecs

        a = chunk_array.as_numpy_array()
        img = a.reshape(a.shape[-3:]) if a.ndim == 4 else a.reshape(a.shape[-2:])
        enc = imagecodecs.jpeg8_encode(np.ascontiguousarray(img), level=self.quality)
        return chunk_spec.prototype.buffer.from_bytes(enc)

    async def _decode_single(self, chunk_bytes, chunk_spec):
        return self._decode_sync(chunk_bytes, chunk_spec)

    async def _encode_single(self, chunk_array, chunk_spec):
        return self._encode_sync(chunk_array, chunk_spec)

    def compute_encoded_size(self, input_byte_length, chunk_spec):
        raise NotImplementedError  # variable size


register_codec("spixwalk.jpeg", JpegCodec)


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
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump(payload, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


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


def _create(group, name, shape, dtype, inner, codecs, attrs):
    outer = (min(FRAMES_PER_SHARD_CHUNK, max(shape[0], 1)),) + tuple(shape[1:])
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


def write_frames(root, shard: int, videos: list, attrs: dict, failed: list, *, quality: int = 90,
                 fps: float | None = None, paths: dict | None = None) -> None:
    """Write a shard's frames (videos = [(video_id, uint8 (n,H,W,3))]) and then its frames marker.

    Any previous content of the shard is removed first: new frames invalidate its label maps.
    """
    sp = shard_path(root, shard)
    if sp.exists():
        shutil.rmtree(sp)
    sp.mkdir(parents=True)
    index, start = [], 0
    for vid, arr in videos:
        index.append({"id": vid, "start": start, "length": int(len(arr)),
                      "fps": fps, "path": (paths or {}).get(vid)})
        start += len(arr)
    size = tuple(videos[0][1].shape[1:3]) if videos else (attrs.get("size", 256),) * 2
    g = zarr.open_group(sp, mode="w", zarr_format=3)
    g.attrs.update({"shard": shard, "videos": index})
    a = _create(g, "frames", (start,) + size + (3,), "uint8", (1,) + size + (3,),
                [JpegCodec(quality=quality)],
                {**attrs, "codec": f"jpeg q{quality}", "video_ids": [v["id"] for v in index],
                 "libraries": library_versions()})
    if start:
        a[:] = np.concatenate([v for _, v in videos])
    _fsync_tree(sp)
    _write_marker(sp / FRAMES_MARKER, {"shard": shard, "ok": [v["id"] for v in index],
                                       "failed": failed, "frames": start})


def write_labels(root, shard: int, cfg: str, labels: list, attrs: dict, failed: list,
                 *, nseg: list | None = None) -> None:
    """Write one label configuration of a shard (labels per video, same order as the frames index).

    A video whose labels failed must still fill its slot (any int16 array of the right length) and
    be named in `failed`; readers skip it.
    """
    sp = shard_path(root, shard)
    if read_marker(sp / FRAMES_MARKER) is None:
        raise RuntimeError(f"{sp}: frames are not complete; write labels after frames")
    (sp / labels_marker(cfg)).unlink(missing_ok=True)
    g = zarr.open_group(sp, mode="r+")
    index = g.attrs["videos"]
    if len(labels) != len(index) or any(len(l) != v["length"] for l, v in zip(labels, index)):
        raise ValueError(f"{sp}/{cfg}: label maps do not match the frames index")
    n = sum(v["length"] for v in index)
    size = tuple(g["frames"].shape[1:3])
    lab = np.concatenate(labels).astype(np.int16) if n else np.zeros((0,) + size, np.int16)
    if nseg is None:
        nseg = [np.array([len(np.unique(f)) for f in l], np.int16) for l in labels]
    ns = np.concatenate(nseg).astype(np.int16) if n else np.zeros(0, np.int16)
    meta = {**attrs, "config": cfg, "video_ids": [v["id"] for v in index],
            "libraries": library_versions()}
    zstd = [BytesCodec(), BloscCodec(cname="zstd", clevel=5, shuffle="shuffle")]
    la = _create(g.require_group("labels"), cfg, (n,) + size, "int16", (1,) + size, zstd, meta)
    na = g.require_group("nseg").create_array(cfg, shape=(n,), dtype="int16", chunks=(max(n, 1),),
                                              compressors=ZstdCodec(level=5), attributes=meta,
                                              fill_value=0, overwrite=True)
    if n:
        la[:] = lab
        na[:] = ns
    _fsync_tree(sp / "labels" / cfg)
    _write_marker(sp / labels_marker(cfg), {"shard": shard, "config": cfg, "failed": failed,
                                            "ok": [v["id"] for v in index
                                                   if v["id"] not in {f["id"] for f in failed}],
                                            "frames": n, "nseg_min": int(ns.min()) if n else None,
                                            "nseg_max": int(ns.max()) if n else None})


# ---------------------------------------------------------------- reader


@dataclass(frozen=True)
class VideoRef:
    shard: int
    video_id: str
    start: int
    length: int


class StoreReader:
    """Read-only view of a store. Picklable: zarr handles are opened lazily in each process."""

    def __init__(self, root):
        self.root = Path(root)
        self._groups = {}
        self._pid = None

    def __getstate__(self):
        return {"root": self.root}

    def __setstate__(self, state):
        self.__init__(state["root"])

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
            self._groups, self._pid = {}, os.getpid()
        if shard not in self._groups:
            self._groups[shard] = zarr.open_group(shard_path(self.root, shard), mode="r")
        return self._groups[shard]

    def videos(self, cfg: str | None = None) -> list[VideoRef]:
        out = []
        for s in self.shards():
            if self._complete(s) is None:
                continue
            bad = set()
            if cfg is not None:
                m = self._complete(s, cfg)
                if m is None:
                    continue
                bad = {f["id"] for f in m.get("failed", [])}
            for v in self._group(s).attrs["videos"]:
                if v["id"] not in bad:
                    out.append(VideoRef(s, v["id"], v["start"], v["length"]))
        return out

    def read_clip(self, ref: VideoRef, t0: int, T: int, cfg: str | None = None):
        if t0 < 0 or t0 + T > ref.length:
            raise IndexError(f"{ref.video_id}: frames {t0}..{t0 + T - 1} outside 0..{ref.length - 1}")
        g = self._group(ref.shard)
        a, b = ref.start + t0, ref.start + t0 + T
        frames = g["frames"][a:b]
        labels = g["labels"][cfg][a:b] if cfg is not None else None
        return frames, labels

    def nseg(self, ref: VideoRef, cfg: str) -> np.ndarray:
        return self._group(ref.shard)["nseg"][cfg][ref.start:ref.start + ref.length]

    def video_info(self, shard: int) -> list[dict]:
        return list(self._group(shard).attrs["videos"])
