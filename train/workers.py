"""DataLoader workers that start from a clean process, leave shutdown to the main process, and never make
anyone wait forever.

Forked workers inherit the parent's threads' locks without the threads: OpenCV's pool (opencv#5150) and
zarr's event-loop thread hang a worker forked after the parent used them (a notebook, the tests,
benchmarks/gpu.py). Workers are therefore started by a forkserver (spawn where there is none); the
forkserver preloads train.data once, so each worker starts with torch, OpenCV and zarr imported but
never used.

Schedulers signal the whole process group, and only the main process decides to checkpoint and stop, so
the workers ignore every stop signal (train/signals.py): held back from their first instruction (the
forkserver starts with them blocked, see forkserver_preload; a worker blocks them before torch's worker
loop installs its own SIGTERM handler), then ignored by `worker_init` once that handler is in place. The
resource tracker multiprocessing starts beside them is started with them blocked as well. That breaks
the two places where multiprocessing and torch end a worker with SIGTERM: torch's shutdown of a worker
that did not exit in time, and multiprocessing's exit handler, which terminates daemonic children and
then joins them, so a process exiting with a live loader iterator waited forever. Our worker processes
therefore terminate() with SIGKILL, and exit when the main process is gone. A worker that hangs is found
by the DataLoader's timeout (`--loader-timeout`): next_batch raises Stalled.
"""
from __future__ import annotations

import multiprocessing as mp
import multiprocessing.connection as mpconn
import multiprocessing.context as mpc
import multiprocessing.forkserver as mpfs
import multiprocessing.resource_tracker as mprt
import os
import signal
import threading

from . import signals
from .signals import STOP_SIGNALS

START_METHODS = ("forkserver", "spawn", "fork")
_PRELOAD = __name__.rsplit(".", 1)[0] + ".forkserver_preload"


class Stalled(Exception):
    """No batch from the loader workers within the DataLoader's timeout."""


def worker_init(worker_id: int) -> None:
    """The DataLoader's worker_init_fn: runs after torch's worker loop installed its SIGTERM handler (which
    ends the worker on any SIGTERM), and replaces it: every stop signal ignored."""
    signals.ignore()


class _Worker:
    """A loader worker: stop signals held back until worker_init ignores them (held back for good without
    it); ends when the main process does; terminate() is SIGKILL."""

    def run(self):
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        threading.Thread(target=_exit_with_parent, daemon=True).start()
        super().run()

    def start(self):
        super().start()
        # multiprocessing's exit handler calls _popen.terminate() (SIGTERM, held back here), then joins
        self._popen.terminate = self._popen.kill

    def terminate(self):
        self.kill()


class ForkServerWorker(_Worker, mpc.ForkServerProcess):
    pass


class SpawnWorker(_Worker, mpc.SpawnProcess):
    pass


class ForkWorker(_Worker, mpc.ForkProcess):
    pass


class _ForkServerContext(mpc.ForkServerContext):
    Process = ForkServerWorker


class _SpawnContext(mpc.SpawnContext):
    Process = SpawnWorker


class _ForkContext(mpc.ForkContext):
    Process = ForkWorker


_CONTEXTS = {"forkserver": _ForkServerContext, "spawn": _SpawnContext, "fork": _ForkContext}


def _exit_with_parent() -> None:
    # torch's worker watchdog polls os.getppid(), which for a forkserver child is the forkserver: a main
    # process that died (SIGKILL, OOM) would leave workers, and the forkserver waiting on them, for good
    parent = mp.parent_process()
    if parent is not None:
        mpconn.wait([parent.sentinel])
        os._exit(1)


def context(name: str | None = None):
    """The multiprocessing context for loader workers: `name`, else forkserver (else spawn)."""
    if name is None:
        name = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
    ctx = _CONTEXTS[name]()
    with signals.blocked():  # the helper processes start with stop signals held back (inherited masks)
        mprt.ensure_running()  # unblocks only SIGINT/SIGTERM, which it ignores: SIGUSR1 stays held back
        if name == "forkserver":  # the preload takes effect when this process's forkserver starts (once)
            ctx.set_forkserver_preload([_PRELOAD])
            mpfs.ensure_running()  # forkserver_preload installs its handlers, then unblocks
    return ctx


def stop_signal_before_run(signum, frame) -> None:
    """The forkserver's handler, inherited by every process it forks, for a stop signal that arrives before
    the process knows what it runs: the forkserver and our workers ignore it; any other process started by
    this forkserver (someone else's DataLoader in the same program) gets the default action, as without us."""
    if mp.parent_process() is None or isinstance(mp.current_process(), _Worker):
        return  # the forkserver itself, a child not yet bootstrapped, or one of ours
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def next_batch(it, timeout: float):
    """next(it), with the DataLoader's timeout turned into Stalled."""
    try:
        return next(it)
    except RuntimeError as e:
        if timeout and "timed out" in str(e):  # torch: "DataLoader timed out after N seconds"
            raise Stalled(f"no batch from the loader workers in {timeout:g} s") from None
        raise


def stop(it) -> None:
    """End an iterator's workers now: the DataLoader's polite shutdown (which kills a worker that does not
    exit in time), then SIGKILL for any still alive, and reap them."""
    procs = list(getattr(it, "_workers", ()))
    shutdown = getattr(it, "_shutdown_workers", None)
    if shutdown is not None:
        shutdown()
    for p in procs:
        if p.is_alive():
            p.kill()
        p.join()
