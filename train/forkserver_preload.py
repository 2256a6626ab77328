"""Imported only by the forkserver that starts DataLoader workers (train.workers.context): its workers
are forked from it and inherit what it holds here."""
from . import data  # noqa: F401  torch, OpenCV, zarr imported once; no thread of theirs has run
from .workers import ignore_stop_signals

ignore_stop_signals()
