"""--config RUN/config.json: a run's resolved options as defaults, overridden by the command line."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# keys of config.json that the run derived rather than read from options; the device is the machine's
DERIVED = {"label_configs", "clips", "steps_per_epoch", "device", "torch", "world", "config"}


def _given(argv: list[str], flags: list[str]) -> bool:
    return any(x in flags or any(x.startswith(f + "=") for f in flags) for x in argv)


# path options, recorded absolute so that config.json reruns (--config) from any directory
PATHS = ("store", "run", "init_from", "config")


def absolute(cfg: dict) -> dict:
    """The options to record: paths absolute (the run itself names them as given, in its messages)."""
    cfg = dict(cfg)
    for k in PATHS:
        if cfg.get(k):
            cfg[k] = str(Path(cfg[k]).resolve())
    if cfg.get("resume") not in (None, "auto", "never"):
        cfg["resume"] = str(Path(cfg["resume"]).resolve())
    return cfg


def parse(p: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """p.parse_args(argv), with the options of --config FILE (if given) as defaults."""
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    path = pre.parse_known_args(argv)[0].config
    if not path:
        return p.parse_args(argv)
    try:
        cfg = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        p.error(f"--config {path}: unreadable ({type(e).__name__}: {str(e)[:120]})")
    if not isinstance(cfg, dict):
        p.error(f"--config {path}: not a run's config.json (holds a {type(cfg).__name__}, expected an object)")
    actions = {a.dest: a for a in p._actions if a.dest not in ("help",)}
    unknown = sorted(k for k in cfg if k not in actions and k not in DERIVED)
    if unknown:
        print(f"[train] --config {path}: ignored keys not options of this version: {', '.join(unknown)}",
              file=sys.stderr)
    if cfg.get("epochs") is not None and _given(argv, ["--steps"]):
        cfg["epochs"] = None  # --steps on the command line replaces the old run's --epochs
    defaults = {k: v for k, v in cfg.items() if k in actions and k not in DERIVED}
    for k in defaults:
        actions[k].required = False  # e.g. --store and --run come from the file unless given
    p.set_defaults(**defaults)
    return p.parse_args(argv)
