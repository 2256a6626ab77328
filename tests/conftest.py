"""Fixtures shared by the test modules. Helpers are imported one way, by their module names
(`from train_synth import make_store`, `from preprocess_fixtures import ...`); the code under test always
as spixwalk.<stage>."""
import pytest

from spixwalk.evaluate.synth import generate
from train_synth import make_store


@pytest.fixture(scope="module")
def store(request, tmp_path_factory):
    """A synthetic store (train_synth.make_store) for the module, shaped by its STORE dict
    (make_store's keywords: shards, n_frames, size, extra_cfgs, ...)."""
    root = tmp_path_factory.mktemp("store")
    make_store(root, **getattr(request.module, "STORE", {}))
    return root


@pytest.fixture(scope="module")
def synth_davis(request, tmp_path_factory):
    """A generated DAVIS-2017-format set for the module, shaped by its SYNTH_DAVIS dict (synth.generate's
    keywords: n_sequences, n_frames, height, width, n_objects, seed)."""
    root = tmp_path_factory.mktemp("synth") / "davis"
    generate(root, **getattr(request.module, "SYNTH_DAVIS", {}))
    return root
