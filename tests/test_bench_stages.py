"""The CPU benchmarks' parts (benchmarks/preprocess.py, eval.py, train.py: one bench_* function per part, each
returning its dict) on tiny inputs, their --quick options, and the one data-wait definition (train/clock.py)
that the trainer's log rows and benchmarks/gpu.py share."""
import time

import numpy as np
import pytest
import torch
from PIL import Image

from benchmarks import eval as bench_eval
from benchmarks import gpu
from benchmarks import preprocess as bench_pre
from benchmarks import train as bench_train
from spixwalk.evaluate import synth
from spixwalk.preprocess.store import StoreReader
from spixwalk.train.clock import Clock, data_wait
from spixwalk.train.data import clip_index
from spixwalk.train.stats import Window

STORE = dict(shards=((0, 2),), n_frames=8, size=64)  # conftest.store


# ---------------------------------------------------------------- the data wait, defined once


def test_data_wait_is_one_minus_busy_over_wall():
    assert data_wait(3.0, 4.0) == pytest.approx(0.25)
    assert data_wait(5.0, 4.0) == 0.0  # never negative
    assert data_wait(0.0, 0.0) == 0.0


def test_cpu_clock_busy_counts_the_steps_only():
    """Busy time is what lies between step_start and step_end: at least the work done there (a sleep lasts at
    least its argument), at most the time around the calls, and nothing between steps."""
    clock = Clock("auto", torch.device("cpu"))
    inside, around = 0.0, 0.0
    for _ in range(2):
        t0 = time.perf_counter()
        clock.step_start()
        t1 = time.perf_counter()
        time.sleep(0.01)
        inside += time.perf_counter() - t1
        clock.step_end()
        around += time.perf_counter() - t0
        before = clock.busy()
        time.sleep(0.01)  # between steps (waiting for data): not busy
        assert clock.busy() == before
    assert inside <= clock.busy() <= around
    assert clock.device() == 0.0 and clock.kind == "cpu"  # the device clock and budgets stay CUDA-only


def test_trainer_log_row_reports_data_wait_of_its_busy_seconds():
    win = Window(["loss"], torch.device("cpu"))
    win.t0 -= 2.0  # the window began 2 s ago
    win.add({"loss": torch.tensor(1.0), "nodes": 3}, {"dropped": 0, "patch": torch.zeros(2, dtype=torch.bool)}, 0.5, 2)
    row, _ = win.row(1, 1, [], busy=1.0)
    assert row["data_wait"] == pytest.approx(data_wait(1.0, row["seconds"]), rel=1e-3)
    assert row["next_wait"] == pytest.approx(0.5 / row["seconds"], rel=1e-3)


def test_gpu_benchmark_reports_the_trainers_data_wait():
    """data_wait = 1 - busy / wall: at least the share of the wall time spent waiting for batches, at most one
    minus the share spent inside the steps (both measured here, against a wall clock around the whole call)."""
    spent = {"step": [], "batch": []}

    class Slow:
        device = torch.device("cpu")

        def step(self, b, dtype):
            t = time.perf_counter()
            time.sleep(0.01)
            spent["step"].append(time.perf_counter() - t)

    def batches():
        while True:
            t = time.perf_counter()
            time.sleep(0.01)
            spent["batch"].append(time.perf_counter() - t)
            yield {"patch": torch.zeros(2), "worker_s": 0.01}

    t0 = time.perf_counter()
    r = gpu.fed(Slow(), batches(), steps=6, warm=1, dtype=None)
    wall = time.perf_counter() - t0
    waited, worked = sum(spent["batch"][1:]), sum(spent["step"][1:])  # the warm step and its batch are not timed
    assert waited / wall <= r["data_wait"] <= 1 - worked / wall
    assert r["timed_steps"] == 6


# ---------------------------------------------------------------- the stages' bench_* functions


@pytest.mark.parametrize("module", [bench_pre, bench_eval, bench_train])
def test_quick_shrinks_the_work_not_the_figures(module):
    quick, full = vars(module.parse_args(["--quick"])), vars(module.parse_args([]))
    assert set(quick) == set(full)  # the same options, so the same parts and JSON keys
    assert all(quick[k] == v for k, v in module.QUICK.items()) and any(full[k] != v for k, v in module.QUICK.items())


def test_preprocess_frame_costs_and_clip_reads(store, tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, (2, 64, 64, 3), dtype=np.uint8)
    r = bench_pre.bench_frame_costs(frames, decode_ms=1.0, n=2)
    assert set(r["ms_per_frame"]) == {"slic_opencv", "slic_skimage", "fh", "lsc_i2", "lsc_i10",
                                      "jpeg_q90_encode_decode", "decode"}
    assert all(v > 0 for v in r["ms_per_frame"].values()) and 0 < r["lsc_i2_vs_i10_pixel_agreement"] <= 1
    r = bench_pre.bench_clip_reads(store, "slic-n30-c30", tmp_path, n=5)
    assert set(r) == {"clip_read_ms", "clip_read_ms_hdf5_gzip", "hdf5_bytes_per_frame"}
    assert all(v > 0 for v in r.values())


def davis2016_like(root):
    """A generated set with DAVIS-2016's masks: one object as 255 on 0, void folded into the background."""
    names = synth.generate(root, n_sequences=1, n_frames=4, height=48, width=64, n_objects=1, seed=2)
    for png in root.glob("Annotations/480p/*/*.png"):
        Image.fromarray(((np.array(Image.open(png)) == 1) * 255).astype(np.uint8), "L").save(png)
    return names


def test_eval_propagation_ours_equals_full(tmp_path):
    seqs = davis2016_like(tmp_path / "davis")
    r = bench_eval.bench_propagation(tmp_path / "davis", seqs, 3, lambda m: None)
    assert set(r) == {"propagation", "propagation_speedup_vs_full", "predictions_identical",
                      "max_abs_soft_label_diff", "propagation_seconds_per_frame"}
    assert r["predictions_identical"] and r["max_abs_soft_label_diff"] < 1e-4 and len(r["propagation"]) == len(seqs)


def test_train_loader_costs_per_clip(store):
    reader = StoreReader(store)
    clips, _ = clip_index(reader.videos(bench_train.CFG), bench_train.T, bench_train.T)
    a = bench_train.parse_args(["--quick", "--loader-clips", "2"])
    r = bench_train.bench_loader_costs(reader, clips, a)
    assert r["loader_ms_per_clip_superpixel"] > 0 and r["loader_ms_per_clip_patch"] > 0  # issue 16, item 5
    assert r["loader_ratio_superpixel_vs_patch"] > 0


def test_train_step_part_times_both_node_types_and_bf16_on_the_same_clips(store):
    reader = StoreReader(store)
    clips, _ = clip_index(reader.videos(bench_train.CFG), bench_train.T, bench_train.T)
    r, t_sp = bench_train.bench_step(bench_train.step_batch(reader, clips, 1, size=128), reps=1)
    assert round(t_sp, 3) == r["step_seconds_superpixel"] > 0 and r["step_seconds_patch"] > 0
    assert r["step_seconds_superpixel_bf16"] > 0 and r["step_speedup_bf16_vs_fp32"] > 0
    assert 1 <= r["nodes_max_superpixel"] <= 30  # the SLIC-30 maps of the store, not CRW's 49 patches
