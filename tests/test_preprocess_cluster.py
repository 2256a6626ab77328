"""Cluster life: two runs on one store, stale claims, engines (real dask / ray), SLURM resubmission."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from spixwalk.preprocess import store
from spixwalk.preprocess.lease import Busy, Lease, lease_path
from fault_points import Points
from preprocess_fixtures import REPO, lavfi_videos, store_tree, write_manifest

CFG = "slic-n30-c30"


def preprocess(*args, cwd=REPO, **kw):
    return subprocess.run([sys.executable, "-m", "preprocess", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, **kw)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Four tiny real videos in two shards, and the store a single plain run makes of them."""
    d = tmp_path_factory.mktemp("corpus")
    m = write_manifest(d / "m.jsonl", lavfi_videos(d / "v", 4), shard_size=2)
    ref = d / "ref"
    res = preprocess("--manifest", m, "--store", ref, "--jobs", 2)
    assert res.returncode == 0, res.stdout + res.stderr
    return m, store_tree(ref)


def test_a_shard_held_by_a_live_task_is_left_alone(corpus, tmp_path):
    m, expected = corpus
    st = tmp_path / "s"
    with Lease(st, 0):  # another live run holds shard 0
        res = preprocess("--manifest", m, "--store", st)
        assert res.returncode == 3, res.stdout + res.stderr
        assert "busy: held by" in res.stdout and "1 busy" in res.stdout
        assert not store.shard_path(st, 0).exists()  # never touched
        st0 = st / "shard-00000"
        st0.mkdir()  # as the holder would have begun it: status names the holder
        assert "shard 0: being written by" in preprocess("status", "--store", st).stdout
        st0.rmdir()
        with pytest.raises(Busy):
            Lease(st, 0).acquire()
    assert not lease_path(st, 0).exists() and not lease_path(st, 1).exists()  # claims released
    assert preprocess("--manifest", m, "--store", st).returncode == 0
    assert store_tree(st) == expected


@pytest.mark.parametrize("point", ["frames.array", "labels.commit"])
def test_two_runs_started_together_equal_one_run(corpus, tmp_path, point):
    """Run A stopped at a write point of its first shard (mid-decode, or about to commit its labels) while run B
    (--force) does everything it can; then A goes on: whichever way they interleave, the store is one run's."""
    m, expected = corpus
    st = tmp_path / "s"
    pts = Points(tmp_path)
    a = pts.start(["preprocess", "--manifest", m, "--store", st], [point], stdout=subprocess.PIPE,
                  stderr=subprocess.PIPE, text=True)
    name, pid = pts.reached()
    assert name == point
    b = preprocess("--manifest", m, "--store", st, "--force")
    assert b.returncode == 3 and "1 busy" in b.stdout, b.stdout + b.stderr  # A's shard: held by a live run
    os.kill(pid, signal.SIGCONT)
    out = a.communicate(timeout=300)
    assert a.returncode == 0, out
    assert store_tree(st) == expected  # array by array, marker by marker
    assert preprocess("--manifest", m, "--store", st).returncode == 0 and store_tree(st) == expected


@pytest.mark.fault
def test_stale_claims_are_taken_over(tmp_path):
    lp = lease_path(tmp_path, 0)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid on this host that no longer runs
    lp.write_text(json.dumps({"host": socket.gethostname(), "pid": dead.pid, "token": "x"}))
    with Lease(tmp_path, 0) as lease:
        assert lease.held()
    lp.write_text(json.dumps({"host": "other-node", "pid": 1, "token": "y"}))
    with pytest.raises(Busy, match="other-node:1"):  # fresh heartbeat on another host: alive
        Lease(tmp_path, 0).acquire()
    os.utime(lp, (time.time() - 3600,) * 2)  # its heartbeat stopped an hour ago
    with Lease(tmp_path, 0) as lease:
        assert lease.held() and json.loads(lp.read_text())["pid"] == os.getpid()


def test_heartbeat_keeps_a_long_task_alive(tmp_path):
    with Lease(tmp_path, 0, heartbeat_s=0.05, stale_s=60):
        lp = lease_path(tmp_path, 0)
        old = time.time() - 3600
        os.utime(lp, (old, old))  # as if the task had not beaten for an hour: stale now
        deadline = time.time() + 120  # only a bound for a broken heartbeat: the loop ends at the first beat
        while lp.stat().st_mtime < old + 1 and time.time() < deadline:
            time.sleep(0.01)
        assert lp.stat().st_mtime > old + 3000, "the heartbeat never refreshed the lease"
        with pytest.raises(Busy):  # refreshed by the heartbeat alone, the claim is alive again
            Lease(tmp_path, 0, stale_s=60).acquire()


@pytest.mark.parametrize("backend", ["dask", "ray"])
def test_engines_give_the_store_loky_gives(corpus, tmp_path, backend):
    import importlib.util

    if backend == "ray" and importlib.util.find_spec("ray") is None:
        pytest.skip("ray is not installed (no wheel for this platform/Python, or the [ray] extra not chosen)")
    if backend == "dask" and importlib.util.find_spec("distributed") is None:
        pytest.skip("dask.distributed is not installed (the [dask] extra)")
    m, expected = corpus
    # a relative --store from another working directory: shards and config land in the client's cwd
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    res = preprocess("--manifest", m, "--store", "rel/store", "--backend", backend, "--jobs", 2,
                     cwd=tmp_path, env=env, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    st = tmp_path / "rel" / "store"
    assert (st / f"config-{CFG}.json").exists()
    assert store_tree(st) == expected


def slurm_task(m, st, task, env_extra=None):
    env = dict(os.environ, SLURM_SUBMIT_DIR=str(REPO), SLURM_ARRAY_TASK_ID=str(task), SLURM_ARRAY_TASK_COUNT="2",
               SLURM_ARRAY_TASK_MIN="1", SLURM_ARRAY_TASK_MAX=str(task), SLURM_CPUS_PER_TASK="1",
               MANIFEST=str(m), STORE=str(st), SHARDS_PER_TASK="1", PYTHON=sys.executable, **(env_extra or {}))
    return subprocess.run(["bash", str(REPO / "cluster" / "preprocess.slurm")], env=env, capture_output=True, text=True)


def test_slurm_partial_resubmission_covers_the_same_shards(corpus, tmp_path):
    m, expected = corpus
    st = tmp_path / "s"
    # --array=1,7 resubmitted: 2 tasks, task ids 1 and 7 (7 is past the manifest's two shards)
    res = slurm_task(m, st, 1)
    assert res.returncode == 0, res.stdout + res.stderr
    assert [p.name for p in sorted(st.glob("shard-*"))] == ["shard-00001"]
    assert {k: v for k, v in store_tree(st).items()} == {k: v for k, v in expected.items() if k.startswith("shard-00001")}
    res = slurm_task(m, st, 7)
    assert res.returncode == 0 and "no shards for this task" in res.stdout
    assert json.loads((st / f"config-{CFG}.json").read_text())["shards"] == [0, 1]  # the idle task wrote last
    assert (REPO / "logs").is_dir()  # SLURM opens logs/... before the script runs


def test_submit_script_sizes_the_array_and_keeps_a_given_one(corpus, tmp_path):
    m, _ = corpus
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "sbatch").write_text("#!/bin/sh\necho sbatch \"$@\"\n")  # no SLURM here: show the submission
    (bindir / "sbatch").chmod(0o755)
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}", MANIFEST=str(m), SHARDS_PER_TASK="1",
               PYTHON=sys.executable)  # the script runs from the checkout root
    run = lambda *a: subprocess.run(["bash", str(REPO / "cluster" / "submit-preprocess.sh"), *a], env=env,
                                    capture_output=True, text=True)
    assert "sbatch --array=0-1 cluster/preprocess.slurm" in run().stdout
    assert "sbatch --array=1 cluster/preprocess.slurm" in run("--array=1").stdout


def _small_files():  # every file this process (and its workers) write is cut at 20 KB: EFBIG, as a full disk
    import resource
    import signal
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))


@pytest.mark.fault
def test_write_errors_name_the_shard_and_spare_the_others(corpus, tmp_path):
    m, expected = corpus
    st = tmp_path / "s"
    res = subprocess.run([sys.executable, "-m", "preprocess", "--manifest", str(m), "--store", str(st)], cwd=REPO,
                         capture_output=True, text=True, preexec_fn=_small_files)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "Traceback" not in res.stdout + res.stderr
    for shard in (0, 1):  # both attempted, each named once with its reason
        lines = [l for l in res.stdout.splitlines() if l.startswith(f"FAILED shard {shard}:")]
        assert len(lines) == 1 and "File too large" in lines[0], res.stdout
    assert store.StoreReader(st).videos() == []  # nothing looks complete
    killed = store.shard_path(st, 0) / "_done_frames.json.tmp-1-deadbeef"  # a marker write killed before its rename
    killed.parent.mkdir(parents=True, exist_ok=True)
    killed.write_text("{")
    assert preprocess("--manifest", m, "--store", st).returncode == 0  # room again: the rerun completes
    assert store_tree(st) == expected  # and leaves no leftover behind


@pytest.mark.fault
def test_dead_or_unreadable_claims_are_taken_over_at_once_and_listed(tmp_path):
    lp = lease_path(tmp_path, 0)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    me = socket.gethostname()
    lp.write_text(json.dumps({"host": me, "pid": dead.pid, "token": "x"}))
    guard = lp.with_name(lp.name + ".takeover")
    guard.write_text("")  # a taker killed inside its takeover: an empty guard beside a dead-pid lease
    leftover = lp.with_name(lp.name + ".tmp-1-abc")
    leftover.write_text("{}")
    os.utime(leftover, (time.time() - 3600,) * 2)
    status = preprocess("status", "--store", tmp_path).stdout
    assert f"{me}:{dead.pid}, stale (pid dead" in status
    with Lease(tmp_path, 0) as lease:  # no 120 s wait: the holder is provably gone
        assert lease.held() and not guard.exists() and not leftover.exists()
        assert f"{me}:{os.getpid()}, live" in preprocess("status", "--store", tmp_path).stdout
    lp.write_text("")  # created, then killed before writing (older versions)
    assert "unreadable, stale" in preprocess("status", "--store", tmp_path).stdout
    with Lease(tmp_path, 0) as lease:
        assert lease.held()
    res = preprocess("status", "--store", tmp_path / "nowhere")
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "nowhere" in res.stderr
