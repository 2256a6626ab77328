"""Run child processes that may be preempted: a stop signal sent to this process (SIGTERM, SIGINT, SIGUSR1;
a scheduler's or Ctrl-C) is forwarded to every live child, and each caller waits for its child, so the
children's checkpoints are written before anyone goes on; once a stop signal came, no new child starts.
Output is read to the end meanwhile, so a child writing to a pipe never writes to a reader that died first.

    with children.forwarding():          # in the main thread, around work that starts children (threads too)
        r = children.run([...], stdout=subprocess.PIPE, text=True)
        if r.signal: ...                 # stopped: the child was told, and has exited with r.returncode
"""
from __future__ import annotations

import signal
import subprocess
import threading
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)  # the one list: train/signals.py uses it too

_live: set = set()
_lock = threading.Lock()
_stopped: list[int] = []  # the stop signals received while forwarding


@dataclass
class Finished:
    returncode: int | None  # None: not started, a stop signal had come first
    stdout: str | bytes | None
    stderr: str | bytes | None
    signal: int = 0  # the stop signal forwarded (0: none): the caller should stop too


def _forward(signum, frame) -> None:
    _stopped.append(signum)
    with _lock:
        procs = list(_live)
    for p in procs:
        try:
            p.send_signal(signum)
        except ProcessLookupError:
            pass


@contextmanager
def forwarding():
    """Stop signals forwarded to the children `run` starts, from any thread, for the block (main thread)."""
    old = {s: signal.signal(s, _forward) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def run(cmd: list, **popen_kw) -> Finished:
    """subprocess.run(cmd, **popen_kw) whose child is sent any stop signal this process receives, and
    waited for. Forwards by itself when called from the main thread; from another thread, inside
    `forwarding()`. A signal sent to the whole group reaches the child twice (the trainer only sets a flag)."""
    main = threading.current_thread() is threading.main_thread()
    with forwarding() if main and signal.getsignal(signal.SIGTERM) is not _forward else nullcontext():
        with _lock:
            if _stopped:
                return Finished(None, None, None, _stopped[0])
            proc = subprocess.Popen(cmd, **popen_kw)
            _live.add(proc)
        try:
            out, err = proc.communicate()
        finally:
            with _lock:
                _live.discard(proc)
    return Finished(proc.returncode, out, err, _stopped[0] if _stopped else 0)
