"""The stop path under real group signals: loader workers that survive them, a closed output pipe, two DDP
ranks (gloo on the CPU), checkpoints that prove what they hold. Fault points, no sleeps."""
import json
import os
import signal
import subprocess
import sys

from pathlib import Path

import pytest
import torch

from fault_points import GUARD_S, REPO, Points
from spixwalk.faults import ENV
from spixwalk.train import digest
from spixwalk.train.loop import PREEMPTED, main

STORE = dict(shards=((0, 2),), n_frames=12, size=64)  # conftest's store fixture
FAST = ["--img-size", "64", "--lr", "3e-4", "--threads", "1", "--log-every", "1000", "--ckpt-every", "1000"]


def _stopped(pid) -> bool:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "T"


def _signal_held(pgid, pids, sig):
    """Every pid stopped at its fault point: signal the whole group, then let them all go on."""
    for pid in pids:
        while not _stopped(pid):  # the point writes the FIFO before it stops itself
            os.sched_yield()
    os.killpg(pgid, sig)
    for pid in pids:
        os.kill(pid, signal.SIGCONT)


def _step(path) -> int:
    return torch.load(path, weights_only=False)["step"]


def _last_row(run) -> int:
    return json.loads((run / "log.jsonl").read_text().splitlines()[-1])["step"]


# A process stopped at a point stops its queues' feeder threads too (a worker's finished batches, the
# trainer's batch requests): hold only the workers, at their first clip, in a run resumed from a finished
# step; once both are held the trainer has asked for batches and waits for one that cannot come
BATCH_WAIT = ["train.clip"]


@pytest.fixture
def groups():
    """Process groups a test started: killed at its end, whatever happened (no stopped leftovers)."""
    pgids = []
    yield pgids
    for g in pgids:
        try:
            os.killpg(g, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.fault
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1])
def test_group_signal_in_a_batch_wait_keeps_the_last_step_and_no_worker_dies(store, tmp_path, sig, groups):
    run, err = tmp_path / "run", tmp_path / "err"
    args = ["--store", store, "--run", run, "--batch", "2", "--workers", "2", *FAST]
    assert main([*map(str, args), "--steps", "2"]) == 0
    pts = Points(tmp_path)
    proc = pts.start(["train", *args, "--steps", "50"], BATCH_WAIT, stderr=open(err, "w"))
    groups.append(proc.pid)
    held = [pts.reached() for _ in range(2)]
    _signal_held(proc.pid, [pid for _, pid in held], sig)
    assert proc.wait() == PREEMPTED, err.read_text()
    text = err.read_text()
    assert "Traceback" not in text and "exited unexpectedly" not in text and "KeyError" not in text, text
    assert f"stopped by signal {int(sig)} at step 2; no step ran" in text, text
    assert _step(run / "checkpoint.pt") == 2 and _last_row(run) == 2  # the last finished step
    assert (run / "preempted").read_text().startswith(f"signal {int(sig)} at step 2")
    assert digest.check(run / "checkpoint.pt")


PIPED = """
import os, signal, subprocess, sys
r, w = os.pipe()
tee = subprocess.Popen(["cat"], stdin=r, stdout=open(sys.argv[1], "w"))  # `| tee log`: dies with the group
os.close(r)
proc = subprocess.Popen([sys.executable, "-m", *sys.argv[2:]], stdout=w, stderr=w)  # `2>&1`
os.close(w)
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # this launcher only reports what became of the two
print(tee.wait(), proc.wait(), flush=True)
"""


@pytest.mark.fault
def test_output_piped_to_a_reader_that_dies_with_the_group_keeps_the_checkpoint(store, tmp_path, groups):
    # `python -m train ... 2>&1 | tee log`, the group signalled: tee is gone before the trainer speaks
    run, pts = tmp_path / "run", Points(tmp_path)
    env = {**os.environ, ENV: f"stop:train.step@2:{pts.fifo}", "PYTHONPATH": REPO, "SPIXWALK_PROGRESS": "lines"}
    launcher = subprocess.Popen([sys.executable, "-c", PIPED, str(tmp_path / "log"), "train", "--store", str(store),
                                 "--run", str(run), "--steps", "50", "--batch", "2", "--workers", "2", *FAST],
                                cwd=REPO, env=env, stdout=subprocess.PIPE, text=True, start_new_session=True)
    groups.append(launcher.pid)
    _, pid = pts.reached()
    _signal_held(launcher.pid, [pid], signal.SIGTERM)
    out, _ = launcher.communicate(timeout=GUARD_S)
    assert out.split() == [str(-signal.SIGTERM), str(PREEMPTED)], out  # tee killed; the trainer stopped cleanly
    assert _step(run / "checkpoint.pt") == 2 and _last_row(run) == 2
    assert "train: 0/50 step" in (tmp_path / "log").read_text()  # the pipe did carry the run's first lines


RANKS = """
import os, signal, socket, subprocess, sys
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
procs = []
for rank in range(2):  # torchrun's environment for two ranks on this host
    env = {**os.environ, "WORLD_SIZE": "2", "RANK": str(rank), "LOCAL_RANK": str(rank), "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(port)}
    procs.append(subprocess.Popen([sys.executable, "-m", *sys.argv[2:]], env=env,
                                  stdout=open(f"{sys.argv[1]}{rank}.out", "w"), stderr=open(f"{sys.argv[1]}{rank}", "w")))
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # this launcher only reports the ranks' exit codes
print(*(p.wait() for p in procs), flush=True)
"""


def _ranks(pts, args, points, tmp_path, tag):
    """Two DDP ranks (gloo on the CPU) started by a launcher in a process group of their own; (launcher,
    the ranks' stderr files)."""
    env = {**os.environ, "PYTHONPATH": REPO}
    if points:
        env[ENV] = f"stop:{','.join(points)}:{pts.fifo}"
    launcher = subprocess.Popen([sys.executable, "-c", RANKS, str(tmp_path / f"{tag}-err"), *map(str, args)],
                                cwd=REPO, env=env, stdout=subprocess.PIPE, text=True, start_new_session=True)
    return launcher, [tmp_path / f"{tag}-err{r}" for r in range(2)]


def _wait_all(launcher) -> list[int]:
    return [int(c) for c in launcher.communicate(timeout=GUARD_S)[0].split()]


def _state(path):
    ck = torch.load(path, weights_only=False)
    return ck["step"], ck["model"], ck["optimizer"]["state"]


def _same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b


@pytest.mark.fault
def test_two_ranks_signalled_stop_at_one_step_and_resume_exactly(store, tmp_path, groups):
    base = ["train", "--store", store, "--batch", "1", "--workers", "1", "--steps", "5", *FAST]
    run, pts = tmp_path / "run", Points(tmp_path)
    # mid-step (each rank held after its second step), then in a batch wait (trainers and workers held)
    for where, n_held, saved in ((["train.step@2"], 2, "checkpoint saved"), (BATCH_WAIT, 2, "no step ran")):
        procs, errs = _ranks(pts, base + ["--run", run], where, tmp_path, where[0])
        groups.append(procs.pid)
        held = [pts.reached() for _ in range(n_held)]
        _signal_held(procs.pid, [pid for _, pid in held], signal.SIGTERM)
        assert _wait_all(procs) == [PREEMPTED, PREEMPTED], [e.read_text() for e in errs]
        for e in errs:  # every rank stopped at the same step
            assert f"stopped by signal 15 at step 2; {saved}" in e.read_text(), e.read_text()
            assert "Traceback" not in e.read_text()
        assert _step(run / "checkpoint.pt") == 2 and sorted(p.name for p in run.glob("*.pt")) == ["checkpoint.pt"]
    procs, errs = _ranks(pts, base + ["--run", run], [], tmp_path, "resume")
    assert _wait_all(procs) == [0, 0], [e.read_text() for e in errs]
    procs, errs = _ranks(pts, base + ["--run", tmp_path / "whole"], [], tmp_path, "whole")
    assert _wait_all(procs) == [0, 0], [e.read_text() for e in errs]
    resumed, whole = _state(run / "checkpoint.pt"), _state(tmp_path / "whole" / "checkpoint.pt")
    assert resumed[0] == whole[0] == 5 and _same(resumed[1], whole[1]) and _same(resumed[2], whole[2])


@pytest.mark.fault
def test_a_rank_with_an_empty_batch_joins_the_all_reduce(tmp_path, groups):
    # every clip of video s1v0 fails to load: a rank drawing it has no batch while the other trains
    from train_synth import make_store
    from spixwalk.preprocess.store import frames_gen, shard_path

    store = tmp_path / "store"
    make_store(store, shards=((0, 1), (1, 1)), n_frames=12, size=64)
    for f in (frames_gen(shard_path(store, 1))[0] / "frames").rglob("*"):
        if f.is_file() and f.name != "zarr.json":
            f.write_bytes(b"not a jpeg shard")
    pts = Points(tmp_path)
    args = ["train", "--store", store, "--run", tmp_path / "run", "--batch", "1", "--workers", "0", "--steps", "6",
            *FAST]
    procs, errs = _ranks(pts, args, [], tmp_path, "empty")
    groups.append(procs.pid)
    codes = _wait_all(procs)  # before the fix: the full rank waited in the all-reduce until gloo's timeout
    assert codes == [1, 0], [e.read_text() for e in errs]  # rank 0's summary says clips were left out
    assert _step(tmp_path / "run" / "checkpoint.pt") == 6
    empty = [Path(f"{e}.out").read_text().count("skipped clip") for e in errs]  # batch 1: a skipped clip, no batch
    assert empty[0] != empty[1], empty  # so some step had one rank empty while the other trained


def _damage(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2: len(data) // 2 + 4096] = bytes(4096)  # zeros inside the weights: still unpickles
    path.write_bytes(bytes(data))


@pytest.mark.fault
def test_a_damaged_checkpoint_is_refused_and_resume_falls_back_to_a_kept_one(store, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["--store", str(store), "--run", str(run), "--batch", "2", "--workers", "0", *FAST,
            "--ckpt-every", "2", "--keep-every", "2"]
    assert main(args + ["--steps", "3"]) == 0
    assert (run / "checkpoint-0000002.pt.sha256").exists()
    torch.load(run / "checkpoint.pt", weights_only=False)  # the damage below still loads: only a digest sees it
    _damage(run / "checkpoint.pt")
    torch.load(run / "checkpoint.pt", weights_only=False)
    capsys.readouterr()
    assert main(args + ["--steps", "4"]) == 0
    err = capsys.readouterr().err
    assert f"checkpoint {run / 'checkpoint.pt'}: damaged" in err and "kept checkpoint of step 2" in err, err
    assert _step(run / "checkpoint.pt") == 4 and [json.loads(r)["step"] for r in open(run / "log.jsonl")][-1] == 4

    _damage(run / "checkpoint.pt")  # no kept copy to fall back to: refused, one line, exit 2
    for kept in run.glob("checkpoint-*.pt"):
        kept.unlink()
    capsys.readouterr()
    assert main(args + ["--steps", "5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{run / 'checkpoint.pt'}: damaged" in err[0], err


@pytest.mark.fault
def test_old_checkpoints_without_a_digest_still_resume(store, tmp_path):
    run = tmp_path / "run"
    args = ["--store", str(store), "--run", str(run), "--batch", "2", "--workers", "0", *FAST]
    assert main(args + ["--steps", "1"]) == 0
    (run / "checkpoint.pt.sha256").unlink()
    assert main(args + ["--steps", "2"]) == 0 and _step(run / "checkpoint.pt") == 2


@pytest.mark.fault
def test_a_wrapper_forwards_a_stop_signal_and_waits_for_the_checkpoint(store, tmp_path):
    # the study's way of running a stage: spixwalk.children.run; the signal reaches only the wrapper
    run = tmp_path / "run"
    wrapper = tmp_path / "wrapper.py"
    wrapper.write_text(
        "import subprocess, sys\nfrom spixwalk import children\n"
        "r = children.run([sys.executable, '-m', *sys.argv[1:]], stdout=subprocess.PIPE, stderr=subprocess.PIPE,"
        " text=True)\nprint(r.returncode, r.signal, r.stderr.strip().splitlines()[-1])\n")
    pts = Points(tmp_path)
    env = {**os.environ, ENV: f"stop:train.step@2:{pts.fifo}", "PYTHONPATH": REPO}
    proc = subprocess.Popen([sys.executable, str(wrapper), "train", "--store", str(store), "--run", str(run),
                             "--steps", "50", "--batch", "2", "--workers", "0", *FAST], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, text=True)
    _, pid = pts.reached()  # the trainer, held after its second step
    while not _stopped(pid):
        os.sched_yield()
    proc.send_signal(signal.SIGTERM)  # the wrapper only, as `kill PID` does
    os.kill(pid, signal.SIGCONT)
    out, _ = proc.communicate(timeout=GUARD_S)
    assert out.startswith(f"{PREEMPTED} {int(signal.SIGTERM)} [train] stopped by signal 15 at step 2"), out
    assert _step(run / "checkpoint.pt") == 2
