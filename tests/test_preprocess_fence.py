"""Fenced commits (issue 18, Build 1): a holder paused at any write point, its shard taken over by a real second
run, then resumed, never makes the store claim data it does not hold, and the store ends equal to a clean run's.

Each case stops run A with SIGSTOP exactly at one write point (spixwalk.faults, armed by the environment),
ages its lease as 120 s without a heartbeat would (A's heartbeat thread is stopped with it), lets run B take
the shard over, resumes A, and compares the store with a clean run's, array by array and marker by marker.
"""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spixwalk.preprocess.lease import lease_path
from fault_points import Points
from preprocess_fixtures import REPO, committed_gens, lavfi_videos, store_tree, write_manifest

pytestmark = pytest.mark.fault

# every write a shard task makes, in order: its generation folder, the arrays created (or copied), the first
# video's array write, the index/attribute writes of finish(), the marker (the commit); frames, then labels
POINTS = [f"{unit}.{what}" for unit in ("frames", "labels")
          for what in ("reserve", "create", "array", "attrs", "commit")]
WAIT_S = 300  # a hang guard only: every process below ends or reaches its point long before


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Two tiny real videos in one shard, and the store a clean run makes of them."""
    d = tmp_path_factory.mktemp("fence")
    m = write_manifest(d / "m.jsonl", lavfi_videos(d / "v", 2), shard_size=2)
    res = run(m, d / "ref")
    assert res.returncode == 0, res.stdout + res.stderr
    return m, store_tree(d / "ref")


def args(m, st):
    return ["preprocess", "--manifest", m, "--store", st, "--jobs", 1]  # one job: the shard runs in this process


def run(m, st):
    return subprocess.run([sys.executable, "-m", *map(str, args(m, st))], cwd=REPO, capture_output=True, text=True,
                          timeout=WAIT_S)


def stopped_at(tmp_path, name, m, st, point):
    """Run `name` of the test until it stops itself at `point`; returns its Popen."""
    (tmp_path / name).mkdir()
    pts = Points(tmp_path / name)
    proc = pts.start(args(m, st), [point], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert pts.reached() == (point, proc.pid), f"{name} exited before {point}: {proc.communicate()}"
    return proc


def take_over(st):
    """A's lease as a holder that stopped beating 1 h ago leaves it: stale, so the next run takes the shard."""
    old = time.time() - 3600
    os.utime(lease_path(st, 0), (old, old))


def resume(proc) -> str:
    os.kill(proc.pid, signal.SIGCONT)
    out, err = proc.communicate(timeout=WAIT_S)
    assert proc.returncode == 3 and "lease lost" in out, (proc.returncode, out, err)  # it says so, exit 3 (busy)
    return out


def files(root: Path) -> dict:
    """Every file as it lies (generation names included), bar the run config and claims."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.startswith("config-") and ".lease" not in p.name}


def assert_honest(st, expected):
    """Whatever the store follows equals the clean run's, whole: a committed unit (frames, or one label
    configuration) holds every file the clean one holds and no other."""
    got = {k: v for k, v in store_tree(st).items() if "/@/" in k}
    for unit in {k.split("/@/")[0] for k in got}:
        mine = {k: v for k, v in got.items() if k.startswith(unit + "/@/")}
        assert mine == {k: v for k, v in expected.items() if k.startswith(unit + "/@/")}, unit


@pytest.mark.parametrize("point", POINTS)
def test_a_stale_holder_resumed_after_the_takeover_changes_nothing(corpus, tmp_path, point):
    m, expected = corpus
    st = tmp_path / "s"
    a = stopped_at(tmp_path, "a", m, st, point)
    take_over(st)
    res = run(m, st)  # B: takes the shard over and finishes it while A is stopped
    assert res.returncode == 0, res.stdout + res.stderr
    assert store_tree(st) == expected
    after_b, followed = files(st), sorted(committed_gens(st))
    resume(a)  # A writes whatever it was about to write, into generations nobody follows
    assert sorted(committed_gens(st)) == followed  # the store follows B's generations still
    assert {k: v for k, v in files(st).items() if k in after_b} == after_b  # not one of B's files touched
    res = run(m, st)  # a rerun keeps everything and removes A's late writes
    assert res.returncode == 0 and " kept " in res.stdout and "yes" not in res.stdout, res.stdout
    assert files(st) == after_b


@pytest.mark.parametrize("point", POINTS)
def test_a_stale_holder_resumed_during_the_takeover_never_makes_the_store_lie(corpus, tmp_path, point):
    m, expected = corpus
    st = tmp_path / "s"
    a = stopped_at(tmp_path, "a", m, st, point)
    take_over(st)
    b = stopped_at(tmp_path, "b", m, st, point.split(".")[0] + ".array")  # B mid-way through the same unit
    resume(a)  # A's late writes land while B holds the shard
    assert_honest(st, expected)
    os.killpg(b.pid, signal.SIGKILL)  # and B dies before committing
    b.communicate(timeout=WAIT_S)
    assert_honest(st, expected)
    status = subprocess.run([sys.executable, "-m", "preprocess", "status", "--store", str(st)], cwd=REPO,
                            capture_output=True, text=True, timeout=WAIT_S).stdout
    assert "shard 0: uncommitted generation" in status, status  # B's, named, not counted as data
    res = run(m, st)
    assert res.returncode == 0, res.stdout + res.stderr
    assert store_tree(st) == expected  # every leftover of A and B removed, nothing missing
