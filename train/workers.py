"""DataLoader workers that start from a clean process and leave shutdown to the main process.

Forked workers inherit the parent's threads' locks without the threads: OpenCV's pool (opencv#5150) and
zarr's event-loop thread hang a worker forked after the parent used them (a notebook, the tests,
benchmarks/gpu.py). Workers are therefore started by a forkserver (spawn where there is none); the
forkserver preloads train.data once, so each worker starts with torch, OpenCV and zarr imported but
never used. The forkserver and every worker ignore SIGTERM and SIGINT: schedulers signal the whole
process group, and only the main process decides to checkpoint and stop (then it ends the workers).
"""
from __future__ import annotations

import multiprocessing as mp
import signal

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
START_METHODS = ("forkserver", "spawn", "fork")
_PRELOAD = __name__.rsplit(".", 1)[0] + ".forkserver_preload"


def ignore_stop_signals() -> None:
    for s in STOP_SIGNALS:
        signal.signal(s, signal.SIG_IGN)


def worker_init(worker_id: int) -> None:
    """DataLoader worker_init_fn (also covers workers of a forkserver started without our preload)."""
    ignore_stop_signals()


def context(name: str | None = None):
    """The multiprocessing context for loader workers: `name`, else forkserver (else spawn)."""
    if name is None:
        name = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
    ctx = mp.get_context(name)
    if name == "forkserver":  # takes effect when this process's forkserver starts (once)
        ctx.set_forkserver_preload(["__main__", _PRELOAD])
    return ctx


def stop(it) -> None:
    """End an iterator's workers now: the DataLoader's polite shutdown, then SIGKILL for any that is stuck
    (they ignore the SIGTERM its fallback sends, and a live worker would block the exit)."""
    procs = list(getattr(it, "_workers", ()))
    shutdown = getattr(it, "_shutdown_workers", None)
    if shutdown is not None:
        shutdown()
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join()
