"""The `spixwalk` console command, pip-installed into a fresh venv that also holds a distribution named `evaluate`.

The stand-in `evaluate` imports `datasets` first, as Hugging Face's does, so `python -m evaluate` there
fails with "No module named 'datasets'" (the clash of issue 12); `spixwalk eval` must not.
"""
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import torch
import torchvision

REPO = Path(__file__).resolve().parents[1]
SOURCES = ["pyproject.toml", "README.md", "spixwalk", "preprocess", "train", "evaluate", "data_manifest"]
HF_STANDIN = '"""Stand-in for Hugging Face evaluate: its package imports datasets first."""\nimport datasets\n'


def pip(venv, *args):
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
                    "--no-deps", "--no-index", "--no-build-isolation", *args], check=True)


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("console")
    env = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    site = Path(subprocess.check_output([str(env / "bin" / "python"), "-c",
                                         "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True).strip())
    # torch & co. from this environment's site-packages, appended after the venv's own (its .pth files,
    # e.g. an editable install of the checkout, are not run)
    ours = [p for p in sys.path if Path(p).name in ("site-packages", "dist-packages")]
    (site / "_project_site.pth").write_text("\n".join([sysconfig.get_paths()["purelib"], *ours]) + "\n")
    hf = tmp / "hf-evaluate"
    (hf / "evaluate").mkdir(parents=True)
    (hf / "evaluate" / "__init__.py").write_text(HF_STANDIN)
    (hf / "pyproject.toml").write_text('[build-system]\nrequires = ["setuptools"]\nbuild-backend = '
                                       '"setuptools.build_meta"\n[project]\nname = "evaluate"\nversion = "0.4.3"\n')
    pip(env, str(hf))
    src = tmp / "src"  # a copy: building in the checkout would leave build/ and *.egg-info there
    src.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(REPO / name, src / name)
    pip(env, "--force-reinstall", str(src))
    return env, site


def run(venv, *args, cwd):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # nothing from the checkout
    return subprocess.run([str(venv[0] / "bin" / args[0]), *args[1:]], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_install_leaves_the_other_evaluate_alone(venv, tmp_path):
    env, site = venv
    assert (site / "evaluate" / "__init__.py").read_text() == HF_STANDIN
    assert (site / "spixwalk" / "evaluate" / "metrics.py").is_file() and (site / "spixwalk" / "train" / "weights.py").is_file()
    assert not any((site / name).exists() for name in ("train", "preprocess", "data_manifest"))
    r = run(venv, "python", "-m", "evaluate", cwd=tmp_path)  # other programs still get the other evaluate
    assert r.returncode == 1 and "No module named 'datasets'" in r.stderr


def test_zarr_codec_entry_point_loads_from_the_install(venv, tmp_path):
    code = ("import sys; from importlib.metadata import entry_points\n"
            "(e,) = [e for e in entry_points(group='zarr.codecs', name='spixwalk.jpeg') if e.value == "
            "'spixwalk.preprocess.jpegcodec:JpegCodec'][:1]\n"
            "print(sys.modules[e.load().__module__].__file__)")
    r = run(venv, "python", "-c", code, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()) == venv[1] / "spixwalk" / "preprocess" / "jpegcodec.py"


def test_spixwalk_command_runs_every_stage_from_anywhere(venv, tmp_path):
    r = run(venv, "spixwalk", "--help", cwd=tmp_path)
    assert r.returncode == 0 and all(c in r.stdout for c in ("manifest", "preprocess", "train", "eval", "metrics"))
    for cmd in ("manifest", "preprocess", "train", "eval", "metrics", "report"):
        r = run(venv, "spixwalk", cmd, "--help", cwd=tmp_path)
        assert r.returncode == 0 and "usage" in r.stdout, (cmd, r.stderr)
    r = run(venv, "spixwalk", "eval", "synth", "--out", "synth", "--sequences", "1", "--frames", "2",
            "--height", "32", "--width", "48", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert len(list((tmp_path / "synth" / "JPEGImages" / "480p").glob("*/*.jpg"))) == 2
    r = run(venv, "spixwalk", "nope", cwd=tmp_path)
    assert r.returncode == 2 and "unknown command 'nope'" in r.stderr


def test_cross_stage_imports_resolve_to_the_installed_stages(venv, tmp_path):
    """train export imports train.weights, which imports train.model: the other evaluate must not answer."""
    enc = {f"encoder.{k}": v for k, v in torchvision.models.resnet18().state_dict().items() if not k.startswith("fc.")}
    (tmp_path / "run").mkdir()
    torch.save({"model": enc, "config": {"steps": 3}, "step": 3}, tmp_path / "run" / "checkpoint.pt")
    r = run(venv, "spixwalk", "train", "export", "--run", "run", "--out", "encoder.pt", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rec = torch.load(tmp_path / "encoder.pt", weights_only=True)
    assert rec["meta"]["steps"] == 3 and torch.equal(rec["state_dict"]["conv1.weight"], enc["encoder.conv1.weight"])


WALK = """
import importlib, json, pkgutil, sys, spixwalk
names = [m.name for m in pkgutil.walk_packages(spixwalk.__path__, "spixwalk.")
         if not m.name.endswith("__main__")]  # the __main__ modules run a command when imported
for name in names:
    importlib.import_module(name)
bare = sorted(k for k in sys.modules if k.split(".")[0] in ("preprocess", "train", "evaluate", "data_manifest"))
print(json.dumps({"names": names, "bare": bare, "file": spixwalk.__file__}))
"""


def test_installed_package_imports_every_module_from_anywhere(venv, tmp_path):
    """Non-editable install, another directory: every module of the package imports under its one name."""
    r = run(venv, "python", "-c", WALK, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["bare"] == [] and Path(got["file"]) == venv[1] / "spixwalk" / "__init__.py"
    want = {f"spixwalk.{m[:-3].replace('/', '.')}" for stage in ("preprocess", "train", "evaluate", "data_manifest")
            for m in [f"{stage}/{p.name}" for p in (REPO / stage).glob("*.py")] if not m.endswith("__main__.py")}
    want = {m.removesuffix(".__init__") for m in want}
    assert want <= set(got["names"]), sorted(want - set(got["names"]))


def test_installed_package_loads_an_exported_encoder_as_a_library(venv, tmp_path):
    enc = {f"encoder.{k}": v for k, v in torchvision.models.resnet18().state_dict().items() if not k.startswith("fc.")}
    (tmp_path / "run").mkdir()
    torch.save({"model": enc, "config": {"steps": 3, "padding": "reflect"}, "step": 3}, tmp_path / "run" / "checkpoint.pt")
    assert run(venv, "spixwalk", "train", "export", "--run", "run", "--out", "encoder.pt", cwd=tmp_path).returncode == 0
    code = ("import torch\nfrom spixwalk.train.weights import load_encoder\n"
            "e = load_encoder('encoder.pt', drop_layer4=True)\n"
            "print(e.conv1.padding_mode, float(e.conv1.weight.sum()), e(torch.zeros(1, 3, 64, 64)).shape[1])")
    r = run(venv, "python", "-c", code, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    mode, total, channels = r.stdout.split()
    assert mode == "reflect" and float(total) == pytest.approx(float(enc["encoder.conv1.weight"].sum()), rel=1e-5)
    assert channels == "256"  # res3 features, as evaluate uses them


IDENTITY = """
import runpy, sys, warnings
warnings.simplefilter("error")  # zarr warns when two classes claim the codec's name
import zarr
from zarr.registry import get_codec_class
import spixwalk.preprocess.store as store
import spixwalk.preprocess.jpegcodec as jpegcodec
import spixwalk.train.data as data
assert data.StoreReader is store.StoreReader and store.JpegCodec is jpegcodec.JpegCodec
assert get_codec_class("spixwalk.jpeg") is jpegcodec.JpegCodec
frames = zarr.open_group(sys.argv[1], mode="r")["frames"]
assert type(frames.serializer) is jpegcodec.JpegCodec and frames[0].std() > 0
sys.argv = ["preprocess", "status", "--store", sys.argv[2]]
try:
    runpy.run_module("preprocess", run_name="__main__", alter_sys=True)  # as `python -m preprocess status`
except SystemExit as e:
    assert not e.code, e.code
print(sorted(k for k in sys.modules if k.split(".")[0] in ("preprocess", "train", "evaluate", "data_manifest")))
print(store.__file__)
"""


def test_checkout_has_one_identity_for_the_store_reader_and_the_codec(tmp_path):
    """In a checkout, `python -m preprocess` and library use load the stage code as spixwalk.* only."""
    from spixwalk.preprocess.store import frames_gen, shard_path

    from train_synth import make_store

    make_store(tmp_path / "store", shards=((0, 1),), n_frames=4, size=64)
    gen = frames_gen(shard_path(tmp_path / "store", 0))[0]  # the committed frames generation: a Zarr group
    r = subprocess.run([sys.executable, "-c", IDENTITY, str(gen), str(tmp_path / "store")],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    bare, where = r.stdout.strip().splitlines()[-2:]
    assert bare == "['preprocess']"  # the folder's empty __init__ that `python -m` imports, no module of it
    assert Path(where) == REPO / "preprocess" / "store.py"


def test_checkout_runs_the_command_as_python_m_spixwalk(tmp_path):
    """Not installed: `python -m spixwalk` from a checkout routes eval/metrics/train to the stages."""
    env = dict(os.environ, PYTHONPATH=str(REPO))  # the checkout as a user's PYTHONPATH names it
    for args, why in ((["eval", "--davis", "none", "--init", "random", "--out", "o"], "none: DAVIS root not found"),
                      (["metrics", "--davis", "none", "--results", "o"], "o: results folder not found"),  # eval wrote nothing
                      (["train", "--store", "none", "--run", "r"], "store none: no such directory")):
        r = subprocess.run([sys.executable, "-m", "spixwalk", *args], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 2 and why in r.stderr, (args, r.stderr)
