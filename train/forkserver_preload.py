"""Imported only by the forkserver that starts DataLoader workers (train.workers.context): its workers
are forked from it and inherit what it holds here."""
import signal

from . import data  # noqa: F401  torch, OpenCV, zarr imported once; no thread of theirs has run
from .workers import STOP_SIGNALS, stop_signal_before_run

for _s in STOP_SIGNALS:  # before a forked child runs our worker_loop, a group signal must not kill it
    signal.signal(_s, stop_signal_before_run)
signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # started with them blocked (workers.context)
