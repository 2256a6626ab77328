"""The one data-wait definition (train/clock.py) that the trainer's log rows and benchmarks/gpu.py share."""
import time

import pytest
import torch

from benchmarks import gpu
from spixwalk.train.clock import Clock, data_wait
from spixwalk.train.stats import Window


# ---------------------------------------------------------------- the data wait, defined once


def test_data_wait_is_one_minus_busy_over_wall():
    assert data_wait(3.0, 4.0) == pytest.approx(0.25)
    assert data_wait(5.0, 4.0) == 0.0  # never negative
    assert data_wait(0.0, 0.0) == 0.0


def test_cpu_clock_busy_counts_the_steps_only():
    clock = Clock("auto", torch.device("cpu"))
    for _ in range(2):
        clock.step_start()
        time.sleep(0.03)
        clock.step_end()
        time.sleep(0.03)  # between steps (waiting for data): not busy
    assert 0.055 <= clock.busy() < 0.1
    assert clock.device() == 0.0 and clock.kind == "cpu"  # the device clock and budgets stay CUDA-only


def test_trainer_log_row_reports_data_wait_of_its_busy_seconds():
    win = Window(["loss"], torch.device("cpu"))
    win.t0 -= 2.0  # the window began 2 s ago
    win.add({"loss": torch.tensor(1.0), "nodes": 3}, {"dropped": 0, "patch": torch.zeros(2, dtype=torch.bool)}, 0.5, 2)
    row, _ = win.row(1, 1, [], busy=1.0)
    assert row["data_wait"] == pytest.approx(data_wait(1.0, row["seconds"]), rel=1e-3)
    assert row["next_wait"] == pytest.approx(0.5 / row["seconds"], rel=1e-3)


def test_gpu_benchmark_reports_the_trainers_data_wait():
    class Slow:  # steps as long as the wait for each batch: half the wall time waits
        device = torch.device("cpu")

        def step(self, b, dtype):
            time.sleep(0.04)

    def batches():
        while True:
            time.sleep(0.04)
            yield {"patch": torch.zeros(2), "worker_s": 0.01}

    r = gpu.fed(Slow(), batches(), steps=6, warm=1, dtype=None)
    assert 0.3 < r["data_wait"] < 0.7 and r["timed_steps"] == 6
