"""One home for superpixel configurations: every stage parses the same options into the same names."""
import argparse

import pytest

from spixwalk.evaluate.cli import main as evaluate_main  # noqa: F401  (evaluate's parser must build)
from spixwalk.preprocess import spconfig
from spixwalk.preprocess.cli import run_parser
from spixwalk.train.options import parse_args


def test_every_stage_spells_options_alike_and_names_the_same_configuration():
    argv = ["--alg", "lsc", "--region-size", "40", "--ratio", "0.2", "--lsc-iterations", "3"]
    pre = run_parser(argparse.ArgumentParser()).parse_args(["--manifest", "m", "--store", "s", *argv])
    tr = parse_args(["--store", "s", "--run", "r", *argv])
    assert spconfig.from_args(pre) == spconfig.from_args(tr) == (
        "lsc", {"region_size": 40, "ratio": 0.2, "iterations": 3}, "lsc-r40-a0.2-i3")
    # train's old spelling still works
    assert spconfig.from_args(parse_args(["--store", "s", "--run", "r", "--alg", "lsc", "--iterations", "5"]))[2] \
        == "lsc-r47-a0.5-i5"
    # defaults are DEFAULTS: the default SLIC name omits the default iteration count
    assert spconfig.from_args(parse_args(["--store", "s", "--run", "r"]))[2] == "slic-n30-c30"
    assert spconfig.from_args(parse_args(["--store", "s", "--run", "r", "--slic-iterations", "10"]))[2] \
        == "slic-n30-c30-i10"


@pytest.mark.parametrize("name", ["slic-n30-c30", "slic-n10-c50-i10", "slic-n5-c30-skimage", "fh-s600-g0.5-m400",
                                  "lsc-r47-a0.5-i2", "random-n30"])
def test_names_round_trip(name):
    alg, params = spconfig.parse_name(name)
    assert spconfig.config_name(alg, **params) == name


@pytest.mark.parametrize("bad", ["slic", "slic-c30-n30", "fh-s600-g0.5", "lsc-r47-a0.5-i2-x", "nope-n3"])
def test_bad_names_refused(bad):
    with pytest.raises(ValueError, match="configuration name"):
        spconfig.parse_name(bad)


def test_store_reexports_the_same_objects():
    from spixwalk.preprocess import store, superpixels

    assert store.config_name is spconfig.config_name and store.SLIC_ITERATIONS == spconfig.SLIC_ITERATIONS
    assert superpixels.DEFAULTS is spconfig.DEFAULTS
