"""`preprocess export`: one complete shard copied to HDF5 (frames decoded to raw uint8, label maps gzip), for
tools that read HDF5. h5py is an optional extra: pip install 'spixwalk[h5]'."""
from __future__ import annotations

import json
import sys

from spixwalk.files import atomic_path

from . import generations, store

H5_MISSING = "preprocess export --format hdf5 needs h5py: pip install 'spixwalk[h5]' (or pip install h5py)"


def export_hdf5(root, shard: int, out) -> dict:
    """Copy one complete shard to HDF5 (frames decoded to raw uint8, labels gzip) for HDF5 tools."""
    import h5py  # checked by cmd_export
    import zarr

    sp = store.shard_path(root, shard)
    fg = generations.frames_gen(sp)
    if fg is None:
        raise ValueError(f"{sp}: frames not complete")
    g = zarr.open_group(fg[0], mode="r")
    lgs = generations.label_configs(sp, fg)
    cfgs = sorted(lgs)
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as h:
        fr = g["frames"]
        h.create_dataset("frames", data=fr[:], chunks=(1,) + fr.shape[1:], compression="gzip")
        h.attrs["videos"] = json.dumps(g.attrs["videos"])
        for c in cfgs:
            lg = zarr.open_group(lgs[c][0], mode="r")
            la = lg["labels"]
            h.create_dataset(f"labels/{c}", data=la[:], chunks=(1,) + la.shape[1:], compression="gzip")
            h.create_dataset(f"nseg/{c}", data=lg["nseg"][:])
    return {"frames": int(g["frames"].shape[0]), "configs": cfgs}


def cmd_export(a) -> int:
    try:
        import h5py  # noqa: F401
    except ImportError:
        print(f"error: {H5_MISSING}", file=sys.stderr)
        return 2
    try:
        info = export_hdf5(a.store, a.shard, a.out)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}")
        return 2
    print(f"{a.out}: shard {a.shard}, {info['frames']} frames, configs {info['configs']}")
    return 0
