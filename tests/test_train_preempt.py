"""Loader workers that cannot hang, and preemption by a group signal that checkpoints (fault points, no sleeps)."""
import os
import select
import signal
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from fault_points import GUARD_S, REPO, Points
from spixwalk.preprocess.store import StoreReader
from spixwalk.train import workers
from spixwalk.train.loop import PREEMPTED, main

STORE = dict(shards=((0, 2),), n_frames=12, size=64)  # conftest's store fixture
FAST = ["--img-size", "64", "--batch", "2", "--lr", "3e-4", "--threads", "1", "--log-every", "1000",
        "--ckpt-every", "1000"]


@pytest.mark.fault
def test_workers_start_after_the_parent_used_opencv_and_zarr(store, tmp_path):
    # the forked-worker hang of issue 18: OpenCV's thread pool and zarr's event loop used in this process first
    cv2.setNumThreads(2)
    cv2.GaussianBlur(np.zeros((1024, 1024, 3), np.uint8), (31, 31), 0)
    r = StoreReader(store)
    frames, _ = r.read_clip(r.videos()[0], 0, 4)
    assert frames.shape == (4, 64, 64, 3)
    assert workers.context().get_start_method() != "fork"
    assert main(["--store", str(store), "--run", str(tmp_path / "r"), "--steps", "2", "--workers", "2", *FAST]) == 0
    assert torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=False)["step"] == 2


def _stopped(pid) -> bool:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "T"


def _group_sigterm(proc, pid):
    while not _stopped(pid):  # the point writes the FIFO before it stops itself: a SIGCONT sent earlier is lost
        os.sched_yield()
    os.killpg(proc.pid, signal.SIGTERM)  # what SLURM and `timeout` do: the whole process group
    os.kill(pid, signal.SIGCONT)  # the trainer stopped itself at the point; the TERM is delivered now


@pytest.mark.fault
def test_group_sigterm_after_a_step_saves_that_step_and_exits_3(store, tmp_path):
    run = tmp_path / "run"
    args = ["train", "--store", store, "--run", run, "--steps", "50", "--workers", "2", *FAST]
    pts = Points(tmp_path)
    proc = pts.start(args, ["train.step"], stderr=open(tmp_path / "err", "w"))
    name, pid = pts.reached()
    _group_sigterm(proc, pid)
    assert proc.wait() == PREEMPTED, (tmp_path / "err").read_text()
    err = (tmp_path / "err").read_text()
    assert "Traceback" not in err and "checkpoint saved" in err
    assert torch.load(run / "checkpoint.pt", weights_only=False)["step"] == 1  # within one step of the signal
    assert not list(run.glob("*.tmp*"))


@pytest.mark.fault
@pytest.mark.parametrize("where", ["train.setup", "train.workers"])
def test_group_sigterm_during_set_up_exits_3_and_saves_nothing(store, tmp_path, where):
    run = tmp_path / "run"
    pts = Points(tmp_path)
    proc = pts.start(["train", "--store", store, "--run", run, "--steps", "5", "--workers", "2", *FAST], [where],
                     stderr=open(tmp_path / "err", "w"))
    name, pid = pts.reached()
    _group_sigterm(proc, pid)
    assert proc.wait() == PREEMPTED, (tmp_path / "err").read_text()
    assert "Traceback" not in (tmp_path / "err").read_text()
    assert not (run / "checkpoint.pt").exists()


def _exited(pids) -> bool:
    """Whether every pid exits within the hang guard (pidfds: no polling, no sleeps)."""
    fds = []
    for pid in pids:
        try:
            fds.append(os.pidfd_open(pid))
        except ProcessLookupError:
            pass
    try:
        while fds:
            ready, _, _ = select.select(fds, [], [], GUARD_S)
            if not ready:
                return False
            for fd in ready:
                fds.remove(fd)
                os.close(fd)
        return True
    finally:
        for fd in fds:
            os.close(fd)


EXIT_WITH_LIVE_WORKERS = """
import torch
from spixwalk.train import workers

class Items(torch.utils.data.Dataset):
    def __len__(self):
        return 100

    def __getitem__(self, i):
        return torch.zeros(3)

if __name__ == "__main__":
    IT = iter(torch.utils.data.DataLoader(Items(), batch_size=2, num_workers=2,
                                          multiprocessing_context=workers.context()))
    next(IT)  # exits with the iterator alive: multiprocessing terminates, then joins, its workers
"""


@pytest.mark.fault
def test_a_process_exiting_with_live_loader_workers_exits(tmp_path):
    # the workers ignore SIGTERM; multiprocessing's exit handler used to wait for them for good
    script = tmp_path / "exit_with_workers.py"
    script.write_text(EXIT_WITH_LIVE_WORKERS)
    env = {**os.environ, "PYTHONPATH": REPO}  # a script's own folder comes first on its path: name this checkout
    res = subprocess.run([sys.executable, str(script)], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=GUARD_S)
    assert res.returncode == 0, res.stderr


@pytest.mark.fault
def test_workers_end_when_the_main_process_is_killed(store, tmp_path):
    # a forkserver's workers watch the forkserver (their OS parent); they must follow the main process instead
    pts = Points(tmp_path)
    proc = pts.start(["train", "--store", store, "--run", tmp_path / "run", "--steps", "5", "--workers", "2", *FAST],
                     ["train.clip"], stderr=subprocess.DEVNULL)
    pids = [pts.reached()[1] for _ in range(2)]  # both workers stopped at their first clip
    assert proc.pid not in pids
    proc.kill()
    proc.wait()
    for pid in pids:
        os.kill(pid, signal.SIGCONT)
    assert _exited(pids)


@pytest.mark.fault
def test_a_hung_worker_stops_the_run_with_one_line_and_exit_1(store, tmp_path):
    pts = Points(tmp_path)
    proc = pts.start(["train", "--store", store, "--run", tmp_path / "run", "--steps", "5", "--workers", "2",
                      "--loader-timeout", "1", *FAST], ["train.clip"], stderr=open(tmp_path / "err", "w"))
    pids = [pts.reached()[1] for _ in range(2)]  # both workers hang (stopped) before their first clip
    assert proc.wait() == 1
    err = (tmp_path / "err").read_text()
    assert "Traceback" not in err and err.count("[train]") == 1, err  # one line; the rest is the progress bar
    assert "[train] error: no batch from the loader workers in 1 s" in err, err
    assert _exited(pids)  # killed and reaped by the trainer, stopped or not
