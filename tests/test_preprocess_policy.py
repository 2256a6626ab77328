"""Failure policy (--retry-failed, --force, --redecode), validation up front, plain-zarr reading, memory."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from spixwalk.preprocess import store
from preprocess_fixtures import REPO, lavfi_videos, store_tree, write_manifest

FH = "fh-s600-g0.5-m400"


def preprocess(*args, **kw):
    return subprocess.run([sys.executable, "-m", "preprocess", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, **kw)


def frames_of(st, vid):
    r = store.StoreReader(st)
    ref = next(v for v in r.videos() if v.video_id == vid)
    return r.read_clip(ref, 0, ref.length)[0]


def test_retry_failed_keeps_finished_videos_and_other_configs(tmp_path):
    a, b = lavfi_videos(tmp_path / "v", 2)
    m = write_manifest(tmp_path / "m.jsonl", [a, b], shard_size=2)
    moved = b.with_suffix(".away")
    b.rename(moved)  # b is missing during the first run
    st = tmp_path / "s"
    assert preprocess("--manifest", m, "--store", st).returncode == 1
    assert preprocess("--manifest", m, "--store", st, "--alg", "fh").returncode == 1
    status = preprocess("status", "--store", st).stdout
    assert "clip01.mp4  [frames]  missing file" in status
    a_frames = frames_of(st, "clip00")
    fh_before = store.StoreReader(st).read_clip(store.StoreReader(st).videos(FH)[0], 0, 16, FH)[1]

    moved.rename(b)  # the file is back: a plain rerun keeps the failure, --retry-failed fixes it
    assert preprocess("--manifest", m, "--store", st).returncode == 1
    res = preprocess("--manifest", m, "--store", st, "--retry-failed")
    assert res.returncode == 0, res.stdout + res.stderr
    r = store.StoreReader(st)
    assert [v.video_id for v in r.videos("slic-n30-c30")] == ["clip00", "clip01"]
    assert np.array_equal(frames_of(st, "clip00"), a_frames)  # the finished video is kept as it was
    assert [v.video_id for v in r.videos(FH)] == ["clip00"]  # fh labels exist only for the old video
    res = preprocess("--manifest", m, "--store", st, "--alg", "fh")
    assert res.returncode == 0 and " kept " in res.stdout  # frames kept, fh labels completed
    r = store.StoreReader(st)
    assert [v.video_id for v in r.videos(FH)] == ["clip00", "clip01"]
    assert np.array_equal(r.read_clip(r.videos(FH)[0], 0, 16, FH)[1], fh_before)

    # --force redoes the requested configuration only; --redecode redoes frames and says what it drops
    res = preprocess("--manifest", m, "--store", st, "--force")
    assert res.returncode == 0 and store.StoreReader(st).configs() == [FH, "slic-n30-c30"]


def test_a_fresh_store_equals_retry_result_array_by_array(tmp_path):
    import zarr

    a, b = lavfi_videos(tmp_path / "v", 2)
    m = write_manifest(tmp_path / "m.jsonl", [a, b], shard_size=2)
    ref = tmp_path / "ref"
    assert preprocess("--manifest", m, "--store", ref).returncode == 0
    st = tmp_path / "s"
    b.rename(tmp_path / "away")
    preprocess("--manifest", m, "--store", st)
    (tmp_path / "away").rename(b)
    assert preprocess("--manifest", m, "--store", st, "--retry-failed").returncode == 0
    sps = [store.shard_path(x, 0) for x in (ref, st)]
    g1, g2 = (zarr.open_group(store.frames_gen(sp)[0], mode="r") for sp in sps)
    l1, l2 = (zarr.open_group(store.labels_gen(sp, "slic-n30-c30")[0], mode="r") for sp in sps)
    assert np.array_equal(g1["frames"][:], g2["frames"][:])
    for name in ("labels", "nseg"):
        assert np.array_equal(l1[name][:], l2[name][:]), name
    assert g1.attrs["videos"] == g2.attrs["videos"]


def test_bad_options_and_manifest_exit_2_with_one_line(tmp_path):
    v = lavfi_videos(tmp_path / "v", 1)
    m = write_manifest(tmp_path / "m.jsonl", v, 1)
    bad_row = tmp_path / "bad.jsonl"
    bad_row.write_text(m.read_text() + json.dumps({"id": "x", "path": "x.mp4"}) + "\n")
    number_path, repeated = tmp_path / "num.jsonl", tmp_path / "dup.jsonl"
    number_path.write_text(m.read_text() + json.dumps({"id": "y", "path": 5, "shard": 0}) + "\n")
    repeated.write_text(m.read_text() * 2)
    (tmp_path / "afile").write_text("")
    cases = {
        ("--fps", "-1"): "--fps", ("--fps", "0"): "--fps", ("--size", "0"): "--size", ("--jobs", "0"): "--jobs",
        ("--quality", "101"): "--quality", ("--store", tmp_path / "afile" / "s"): "not a writable folder",
        ("--manifest", bad_row): "bad.jsonl:2: malformed manifest row: missing shard",
        ("--shard-index", "1"): "--shard-index goes with",
        ("--manifest", number_path): "num.jsonl:2: malformed manifest row: path must be a non-empty string, got 5",
        ("--manifest", repeated): "dup.jsonl:2: malformed manifest row: id 'clip00' repeats line 1",
    }
    for args, msg in cases.items():
        full = {"--manifest": m, "--store": tmp_path / "s"}
        full.update(dict([args]))
        res = preprocess(*[x for kv in full.items() for x in kv], *(() if args[0] in full else args))
        assert res.returncode == 2 and msg in res.stderr, (args, res.stderr)
        assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr
    assert not (tmp_path / "s").exists()


def test_other_fps_or_size_on_existing_frames_is_refused(tmp_path):
    m = write_manifest(tmp_path / "m.jsonl", lavfi_videos(tmp_path / "v", 1), 1)
    st = tmp_path / "s"
    assert preprocess("--manifest", m, "--store", st).returncode == 0
    before = store_tree(st)
    res = preprocess("--manifest", m, "--store", st, "--fps", "4", "--alg", "fh")
    assert res.returncode == 2 and "holds frames at --fps 8 --size 256" in res.stderr
    res = preprocess("--manifest", m, "--store", st, "--fps", "8.0000001")  # a difference the message shows
    assert res.returncode == 2 and "holds frames at --fps 8 --size 256, this run asks --fps 8.0000001" in res.stderr
    assert store_tree(st) == before
    res = preprocess("--manifest", m, "--store", st, "--fps", "4", "--redecode")
    assert res.returncode == 0 and store.StoreReader(st).videos()[0].length == 8


def test_other_quality_or_shard_members_than_the_store_holds_are_refused(tmp_path):
    a, b = lavfi_videos(tmp_path / "v", 2)
    m = write_manifest(tmp_path / "m.jsonl", [a, b], 2)
    st = tmp_path / "s"
    assert preprocess("--manifest", m, "--store", st).returncode == 0
    before = store_tree(st)
    res = preprocess("--manifest", m, "--store", st, "--quality", "50", "--alg", "fh")
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "holds frames at --quality 90, this run asks --quality 50" in res.stderr
    rebuilt = write_manifest(tmp_path / "m2.jsonl", [a], 1)  # shard 0 now lists clip00 only
    res = preprocess("--manifest", rebuilt, "--store", st, "--alg", "fh")
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "holds other videos than the manifest lists for shard 0" in res.stderr and "'clip01'" in res.stderr
    assert store_tree(st) == before


def _codec_shim(tmp_path) -> Path:
    """A dist-info declaring pyproject.toml's zarr.codecs entry points, for a venv installed before them."""
    import tomllib

    eps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]["zarr.codecs"]
    d = tmp_path / "shim" / "spixwalk_codec_shim-0.dist-info"
    d.mkdir(parents=True)
    (d / "METADATA").write_text("Metadata-Version: 2.1\nName: spixwalk-codec-shim\nVersion: 0\n")
    (d / "entry_points.txt").write_text("[zarr.codecs]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()))
    return d.parent


def test_plain_zarr_and_dask_read_the_store_without_project_imports(tmp_path):
    from importlib.metadata import entry_points

    m = write_manifest(tmp_path / "m.jsonl", lavfi_videos(tmp_path / "v", 1), 1)
    st = tmp_path / "s"
    assert preprocess("--manifest", m, "--store", st).returncode == 0
    paths = [str(REPO)]
    if not entry_points(group="zarr.codecs", name="spixwalk.jpeg"):
        paths.insert(0, str(_codec_shim(tmp_path)))
    code = (f"import sys, zarr, dask.array as da\n"
            f"from pathlib import Path\n"  # README's rule: the highest-numbered generation holding its marker
            f"gen = max((p for p in Path({str(store.shard_path(st, 0) / 'frames')!r}).iterdir()\n"
            f"           if (p / '_done_frames.json').exists()), key=lambda p: int(p.name.split('-')[0]))\n"
            f"g = zarr.open_group(gen, mode='r')\n"
            f"f = g['frames'][0]\n"
            f"assert f.shape == (256, 256, 3) and f.std() > 10, f.shape\n"
            f"assert da.from_zarr(g['frames']).mean().compute() > 0\n"
            f"names = [k.removeprefix('spixwalk.') for k in sys.modules]  # installed: spixwalk.preprocess\n"
            f"print(sorted(k for k in names if k.split('.')[0] in ('preprocess', 'train', 'evaluate')))\n")
    res = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=os.pathsep.join(paths)),
                         capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "['preprocess', 'preprocess.jpegcodec']"  # only the codec was loaded


PEAK = """
import json, sys
from spixwalk.preprocess.run import process_shard
rows = json.loads(sys.argv[1])
st = process_shard(sys.argv[2], 0, rows, "slic", {"n_segments": 30, "compactness": 30.0}, "slic-n30-c30")
assert not st["failed"] and st["frames"] > 0, st
print([int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")][0])
"""


def test_peak_memory_does_not_grow_with_the_shard(tmp_path):
    if not Path("/proc/self/status").exists():
        pytest.skip("needs /proc (Linux) for the peak RSS")
    vids = lavfi_videos(tmp_path / "v", 8, seconds=8.0)  # 64 frames each: ~12 MB of raw frames per video
    peaks = {}
    for n in (1, 8):
        rows = [{"id": v.stem, "path": str(v)} for v in vids[:n]]
        res = subprocess.run([sys.executable, "-c", PEAK, json.dumps(rows), str(tmp_path / f"s{n}")],
                             capture_output=True, text=True, cwd=REPO)
        assert res.returncode == 0, res.stderr
        peaks[n] = int(res.stdout.split()[-1]) / 1024  # MB
    # holding the shard would add ~7 x 12 MB of frames plus their labels; one video at a time adds ~0
    assert peaks[8] - peaks[1] < 30, peaks
