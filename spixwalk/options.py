"""What every stage's command line shares.

stage_parser                 a stage's ArgumentParser: usage names the command as typed, --help shows defaults
show_defaults                the defaults shown in the help of every subcommand too
resolve_device               --device auto|cpu|cuda|cuda:N -> a torch.device
"""
from __future__ import annotations

import argparse
import copy


def resolve_device(name: str = "auto"):
    """auto: the first CUDA device when there is one, else the CPU; cuda without a visible device is a
    ValueError naming the option."""
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: no CUDA device visible")
    device = torch.device(name)
    return torch.device("cuda", torch.cuda.current_device()) if device.type == "cuda" and device.index is None else device


COMMAND: str | None = None  # set by spixwalk.cli to the command being run ("spixwalk train"), for usage lines


def _has_default(action) -> bool:
    """A default worth showing: not unset (None), not a flag's False, not suppressed. By identity: 0 == False,
    and a default of 0 is shown."""
    d = action.default
    return d is not None and d is not False and not (isinstance(d, str) and d == argparse.SUPPRESS)


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's default in --help, options without help text included; None / False defaults (unset,
    flags) are not shown."""

    def _format_action(self, action):
        if not action.help and action.option_strings and _has_default(action):
            action = copy.copy(action)  # argparse lists an option's help line only when it has help text
            action.help = "(default: %(default)s)"
        return super()._format_action(action)

    def _get_help_string(self, action):
        if not _has_default(action) or "%(default)" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def stage_parser(prog: str, **kwargs) -> argparse.ArgumentParser:
    """ArgumentParser of a stage command line, prog as run with `python -m` ("python -m train export"): under
    the spixwalk command its usage says what was typed ("spixwalk train export")."""
    if COMMAND:
        prog = " ".join([COMMAND, *prog.split()[3:]])
    return argparse.ArgumentParser(prog=prog, formatter_class=DefaultsHelpFormatter, **kwargs)


def show_defaults(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """DefaultsHelpFormatter for p's subcommands too (argparse does not pass it on)."""
    p.formatter_class = DefaultsHelpFormatter
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                show_defaults(sub)
    return p
