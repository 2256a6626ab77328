"""spixwalk manifest|preprocess|train|eval|metrics|report ...: the `python -m` stages under one command.

Each command runs its stage's command-line module, spixwalk.<stage>.cli, the module `python -m <stage>`
runs from a checkout; nothing here touches sys.path or the environment of the workers a stage starts
(installed, they import spixwalk as this process does).
"""
from __future__ import annotations

import sys

EVAL_COMMANDS = ("davis", "keypoints", "vip", "walk", "metrics", "synth", "superpixels", "report")
COMMANDS = ("manifest", "preprocess", "train", "eval", "metrics", "report", "study")
USAGE = """usage: spixwalk COMMAND [options]   (each command has --help; spixwalk --version)

  manifest    list videos into a sharded manifest        (python -m data_manifest build|sample)
  preprocess  frames + superpixel label maps to a store  (python -m preprocess [run|status|show|export])
  train       contrastive random walk training           (python -m train; `train export` an encoder)
  eval        DAVIS label propagation                     (python -m evaluate davis; or eval keypoints|vip|walk|synth|superpixels)
  metrics     J&F as the official DAVIS toolkit           (python -m evaluate metrics)
  report      tables and figures across runs              (python -m evaluate report)
  study       arms x seeds at equal training FLOPs, compared  (python -m spixwalk.study)"""


def version() -> str:
    from importlib.metadata import PackageNotFoundError, version as installed

    try:
        return installed("spixwalk")
    except PackageNotFoundError:  # a checkout that was never installed
        import re
        from pathlib import Path

        text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
        return re.search(r'^version = "([^"]+)"', text, re.M).group(1) + " (checkout)"


def dispatch(cmd: str, argv: list[str]) -> int:
    from spixwalk import options

    # usage lines name what was typed: `spixwalk eval davis`, `spixwalk metrics`, `spixwalk train export`
    options.COMMAND = "spixwalk" if cmd in ("metrics", "report") else f"spixwalk {cmd}"
    if cmd == "manifest":
        from spixwalk.data_manifest.cli import main
    elif cmd == "preprocess":
        from spixwalk.preprocess.cli import main
    elif cmd == "train":
        from spixwalk.train.cli import main
    elif cmd == "study":
        from spixwalk.study.cli import main
    else:
        from spixwalk.evaluate.cli import main
        if cmd in ("metrics", "report"):
            argv = [cmd, *argv]
        elif not argv or argv[0] not in EVAL_COMMANDS and argv[0] not in ("-h", "--help"):
            argv = ["davis", *argv]
    return main(argv)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    if argv[0] == "--version":
        print(f"spixwalk {version()}")
        return 0
    if argv[0] not in COMMANDS:
        print(f"spixwalk: unknown command {argv[0]!r}; choose one of {', '.join(COMMANDS)}\n\n{USAGE}",
              file=sys.stderr)
        return 2
    return dispatch(argv[0], argv[1:])
