"""Test-only fault points: with SPIXWALK_FAULT unset, point() is one environment lookup and nothing else.

SPIXWALK_FAULT="stop:<point>[,<point>...]:<fifo>": the first time a process reaches a listed point it
writes "<point> <pid>" to the FIFO and stops itself (SIGSTOP) until the test continues it (SIGCONT);
"tell:..." only writes. Tests pause a task exactly at a write point, then signal it, kill it or let
another task take its shard over: no sleeping, no guessing where a process is.
"""
from __future__ import annotations

import os
import signal

ENV = "SPIXWALK_FAULT"
_fired: set = set()


def point(name: str) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    mode, names, fifo = spec.split(":", 2)
    if name not in names.split(",") or (os.getpid(), name) in _fired:
        return
    _fired.add((os.getpid(), name))
    fd = os.open(fifo, os.O_WRONLY)
    try:
        os.write(fd, f"{name} {os.getpid()}\n".encode())
    finally:
        os.close(fd)
    if mode == "stop":
        os.kill(os.getpid(), signal.SIGSTOP)
