"""The stop signals, one list for the trainer and its loader workers, and the trainer's handler.

Schedulers signal the whole process group (SLURM preemption and time limits, `timeout`, Ctrl-C): the main
process decides to checkpoint and stop; every helper process (loader workers, the forkserver that starts
them, multiprocessing's resource tracker) ignores these signals and ends when the main process does.
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

from spixwalk.children import STOP_SIGNALS  # noqa: F401  one list: trainer, workers, wrappers that forward


@contextmanager
def blocked():
    """Stop signals held back in this thread for the block: a process started inside inherits the mask, so
    a group signal cannot end it before it has installed its own handlers (they stay pending here)."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def ignore() -> None:
    """This process ignores every stop signal (and receives none held back: unblocked after SIG_IGN)."""
    for s in STOP_SIGNALS:
        signal.signal(s, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


class Preempted(BaseException):
    """A stop signal during set-up: nothing trained, nothing saved (a BaseException: no `except Exception` eats it)."""


class StopSignal:
    """The trainer's handler for STOP_SIGNALS.

    During set-up a signal raises Preempted at once; once `training` is set it only sets `signum`, and the
    loop stops before its next step (every rank at the same step: train/distributed.py agrees on it)."""

    def __init__(self):
        self.signum, self.old, self.training = 0, {}, False

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in STOP_SIGNALS:
                self.old[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum, frame):
        self.signum = signum
        if not self.training:
            raise Preempted(signum)

    def __exit__(self, *exc):
        for s, h in self.old.items():
            signal.signal(s, h)
