"""Test-only fault points: with SPIXWALK_FAULT unset, point() is one environment lookup and nothing else.

SPIXWALK_FAULT="stop:<point>[,<point>...]:<fifo>": the first time a process reaches a listed point it
writes "<point> <pid>" to the FIFO and stops itself (SIGSTOP) until the test continues it (SIGCONT);
"tell:..." only writes. A point listed as <point>@N fires at its Nth arrival in a process (default: the
first). Tests pause a task exactly at a write point, then signal it, kill it or let
another task take its shard over: no sleeping, no guessing where a process is.
"""
from __future__ import annotations

import os
import signal

ENV = "SPIXWALK_FAULT"
_arrivals: dict = {}


def point(name: str) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    mode, names, fifo = spec.split(":", 2)
    want = dict(n.partition("@")[::2] for n in names.split(","))  # point -> its arrival ("" = the first)
    if name not in want:
        return
    key = (os.getpid(), name)
    _arrivals[key] = _arrivals.get(key, 0) + 1
    if _arrivals[key] != int(want[name] or 1):
        return
    fd = os.open(fifo, os.O_WRONLY)
    try:
        os.write(fd, f"{name} {os.getpid()}\n".encode())
    finally:
        os.close(fd)
    if mode == "stop":
        os.kill(os.getpid(), signal.SIGSTOP)
