"""The GPU benchmark and the device code paths, run on the CPU: the same script with tiny sizes, batched
features and off-thread PNG writing equal to the frame-at-a-time path, the fused colour jitter."""
import json

import numpy as np
import pytest
import torch

from benchmarks import gpu
from spixwalk.options import resolve_device
from spixwalk.evaluate import davis_run, features
from spixwalk.evaluate.cli import main as evaluate_main
from train_synth import make_store
from spixwalk.train.data import colour_jitter


SYNTH_DAVIS = dict(n_sequences=2, n_frames=5, height=64, width=96, n_objects=2, seed=3)  # conftest.synth_davis


@pytest.fixture
def davis(synth_davis):
    return synth_davis


def test_tiny_gpu_benchmark_runs_every_part_on_the_cpu(tmp_path, davis):
    make_store(tmp_path / "store", shards=((0, 2),), n_frames=8, size=64)
    cpu = tmp_path / "cpu"
    assert evaluate_main(["davis", "--davis", str(davis), "--init", "random", "--device", "cpu", "--no-overlays",
                          "--out", str(cpu)]) == 0
    out = tmp_path / "gpu.json"
    assert gpu.main(["--tiny", "--store", str(tmp_path / "store"), "--davis", str(davis), "--year", "2017",
                     "--cpu-results", str(cpu), "--pred-dir", str(tmp_path / "pred"), "--out", str(out),
                     "--work", str(tmp_path / "work"), "--parts", "trainer,batch,precision,davis"]) == 0
    r = json.loads(out.read_text())
    assert set(r["trainer"]) == {"superpixels", "patches"}  # python -m train itself (--compile: not on a CPU)
    for nodes, t in r["trainer"].items():
        assert t["batch"] == r["batch"][nodes]["bf16"] and t["frames_per_s"] > 0 and 0 <= t["data_wait"] <= 1
    assert list(r["part_seconds"]) == ["trainer", "batch", "precision", "davis"]  # saved after each (the study
    # part is spixwalk.study.device_protocol, whose protocol tests/test_study.py runs end to end)
    assert set(r["estimate_s"]) == set(r["part_seconds"]) and "dropped" not in r
    p = r["precision"]
    assert p["finite"] and len(p["bf16_loss"]) == len(p["fp32_loss"]) == 2
    assert p["bf16_loss"] != p["fp32_loss"]  # autocast really ran in bf16
    assert p["final_rel_diff"] < 0.05
    d = r["davis"]
    assert d["frames"] == 10 and not d["failures"]
    # the benchmark's path (threads, writer) and the CLI's give the same masks on the same device
    assert d["pixels_differing"] == 0 and d["cpu_J_and_F"] == pytest.approx(d["J&F"])


class FakeModel:
    """Steps that run out of device memory above `limit` clips, as a GPU under --memory-gb would."""

    device = torch.device("cpu")  # where fits() syncs, as on gpu.Model

    def __init__(self, limit):
        self.limit, self.tried = limit, []
        self.opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)

    def step(self, b, dtype):
        self.tried.append(len(b["patch"]))
        if len(b["patch"]) > self.limit:
            raise torch.cuda.OutOfMemoryError("fake: out of memory")
        return torch.zeros(())


@pytest.mark.parametrize("limit", [5, 37, 300])
def test_batch_search_finds_the_largest_batch_that_fits(limit):
    probe = {"frames": torch.zeros(3, 1), "patch": torch.zeros(3, dtype=torch.bool)}
    m = FakeModel(limit)
    got = gpu.max_batch(m, probe, None, limit=1024, resolution=8)
    assert got <= limit < got + 8 and (got == 0 or got in m.tried)  # fits, and within the resolution
    assert max(m.tried) > limit  # the search did meet the memory cap
    capped = gpu.max_batch(FakeModel(2000), probe, None, limit=100, resolution=8)
    assert 100 - 8 < capped <= 100  # everything fits: the search stops at --max-batch


class Batched(features.RGBFeatures):
    batch = 3


def test_batched_features_and_threaded_writes_equal_one_frame_at_a_time(tmp_path, davis):
    one, three = tmp_path / "one", tmp_path / "three"
    for out, feat in ((one, features.RGBFeatures()), (three, Batched())):
        out.mkdir()
        davis_run.propagate_sequence(davis, 2017, "synth-00", feat, out, overlays=True)
    pngs = sorted(p.relative_to(one) for p in one.rglob("*.png"))
    assert len(pngs) == 5 + 4  # masks, overlays of the propagated frames
    for p in pngs:
        assert (one / p).read_bytes() == (three / p).read_bytes(), p


def test_frames_of_another_size_fail_the_sequence_without_output(tmp_path, davis):
    from PIL import Image

    bad = tmp_path / "davis"
    import shutil

    shutil.copytree(davis, bad)
    frame = bad / "JPEGImages" / "480p" / "synth-01" / "00003.jpg"
    Image.open(frame).resize((40, 30)).save(frame)
    with pytest.raises(davis_run.InputError, match="00003.jpg: frame size"):
        davis_run.propagate_sequence(bad, 2017, "synth-01", Batched(), tmp_path / "out")
    assert not (tmp_path / "out" / "synth-01").exists() and not list((tmp_path / "out").glob(".*partial"))


@pytest.mark.parametrize("seed,amount", [(0, 0.1), (1, 0.4), (2, 0.0)])
def test_fused_colour_jitter_is_brightness_then_contrast_then_saturation(seed, amount):
    img = np.random.default_rng(seed).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    rng = np.random.default_rng(seed)
    b, c, s = (rng.uniform(1 - amount, 1 + amount) for _ in range(3))
    x = img.astype(np.float64) * b
    x = (x - (x @ gpu_gray()).mean()) * c + (x @ gpu_gray()).mean()
    g = (x @ gpu_gray())[..., None]
    want = np.clip((x - g) * s + g, 0, 255)
    got = colour_jitter(img, np.random.default_rng(seed), amount)
    assert got.dtype == np.uint8 and np.abs(got - want).max() < 1  # one uint8 pass: within one level


def gpu_gray():
    return np.array([0.299, 0.587, 0.114])


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto") == torch.device("cpu")
        with pytest.raises(ValueError, match="no CUDA device"):
            resolve_device("cuda")


def test_a_part_that_would_not_fit_is_dropped_not_started(tmp_path):
    out = tmp_path / "gpu.json"
    assert gpu.main(["--tiny", "--store", str(tmp_path / "none"), "--parts", "batch,davis", "--budget-s", "10",
                     "--startup-s", "0", "--out", str(out)]) == 0  # both estimates exceed 10 s: nothing runs
    r = json.loads(out.read_text())
    assert r["dropped"] == ["batch", "davis"] and "part_seconds" not in r
