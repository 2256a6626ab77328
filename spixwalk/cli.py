"""spixwalk manifest|preprocess|train|eval|metrics|report ...: the `python -m` stages under one command.

The stages import each other by their top-level names (`from preprocess.store import ...`), as they do
when run with `python -m` from the repository. Installed, they live inside the spixwalk package, whose
folder is not on sys.path; this command puts it first, for this process and the workers it starts (via
PYTHONPATH), so `evaluate` here means ours while every other program still imports Hugging Face's.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

STAGES = ("preprocess", "train", "evaluate", "data_manifest")
EVAL_COMMANDS = ("davis", "metrics", "synth", "superpixels", "report")
USAGE = """usage: spixwalk COMMAND [options]   (each command has --help)

  manifest    list videos into a sharded manifest        (python -m data_manifest build|sample)
  preprocess  frames + superpixel label maps to a store  (python -m preprocess [run|status|show|export])
  train       contrastive random walk training           (python -m train; `train export` an encoder)
  eval        DAVIS label propagation                     (python -m evaluate davis; or eval synth|superpixels)
  metrics     J&F as the official DAVIS toolkit           (python -m evaluate metrics)
  report      tables and figures across runs              (python -m evaluate report)

  --stage-path  print the folder to put on PYTHONPATH of workers this command does not start
                (e.g. `PYTHONPATH=$(spixwalk --stage-path) dask worker tcp://host:8786`)"""


def stage_root() -> Path:
    """The folder holding the stage packages: installed, site-packages/spixwalk; editable or a checkout, the repo."""
    candidates = []
    try:
        spec = importlib.util.find_spec("spixwalk.train")
        if spec and spec.origin:
            candidates.append(Path(spec.origin).parent.parent)
    except ImportError:
        pass
    candidates.append(Path(__file__).resolve().parent.parent)
    for root in candidates:
        if all((root / s / "__init__.py").is_file() for s in STAGES):
            return root
    raise SystemExit(f"spixwalk: stage packages {', '.join(STAGES)} not found next to {candidates[-1]}")


def use_stages(root: Path) -> None:
    root = str(root)
    if sys.path[:1] != [root]:
        sys.path.insert(0, root)
    for name in STAGES:  # an `evaluate` imported before us (Hugging Face's) must not stand in for ours
        mod = sys.modules.get(name)
        if mod is not None and not str(getattr(mod, "__file__", "") or "").startswith(root):
            del sys.modules[name]
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = root + (os.pathsep + old if old else "")


def dispatch(cmd: str, argv: list[str]) -> int:
    if cmd == "manifest":
        from data_manifest.__main__ import main
    elif cmd == "preprocess":
        from preprocess.__main__ import main
    elif cmd == "train":
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as train/__main__.py, before torch loads
        from train.__main__ import run as main
    else:
        from evaluate.__main__ import main
        if cmd in ("metrics", "report"):
            argv = [cmd, *argv]
        elif not argv or argv[0] not in EVAL_COMMANDS and argv[0] not in ("-h", "--help"):
            argv = ["davis", *argv]
    return main(argv)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = ("manifest", "preprocess", "train", "eval", "metrics", "report")
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    if argv[0] == "--stage-path":
        print(stage_root())
        return 0
    if argv[0] not in commands:
        print(f"spixwalk: unknown command {argv[0]!r}; choose one of {', '.join(commands)}\n\n{USAGE}",
              file=sys.stderr)
        return 2
    use_stages(stage_root())
    return dispatch(argv[0], argv[1:])
