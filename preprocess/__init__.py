"""Offline preprocessing: per manifest shard, ffmpeg-decoded frames and superpixel label maps in a Zarr v3 store.

cli.py         `python -m preprocess [run] | status | show | export`: options, checks, the summary table
run.py         one task per manifest shard: decode frames (where missing), label maps, markers last
decode.py      video -> uint8 RGB frames at a fixed frame rate and size, via one ffmpeg process
superpixels.py per-frame label maps (SLIC / FH / LSC / random cells), int16, contiguous 0..S-1
spconfig.py    the one home of superpixel configurations: parameters, defaults, options, names
store.py       the store format, writer and reader side by side (shards, generations, arrays, markers)
generations.py fenced commits: each attempt writes a numbered generation of its own and commits it by its marker
jpegcodec.py   the `spixwalk.jpeg` Zarr codec of the frames (plain zarr loads it by entry point)
lease.py       one writer per shard: a lease file kept alive by a heartbeat
faults.py      test-only fault points (a process stops itself at a named write)
engines.py     shard tasks on loky (joblib), a dask `distributed` cluster or ray
views.py       looking at a store: `status` table (`--videos`: its videos), `show` superpixel boundary overlays
export.py      `export`: one shard to HDF5 (h5py, the optional `h5` extra)
"""
