"""Loader workers that cannot hang, and preemption by a group signal that checkpoints (fault points, no sleeps)."""
import os
import signal

import cv2
import numpy as np
import pytest
import torch

from fault_points import Points
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
