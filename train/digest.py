"""Checkpoints that prove what they hold: FILE.sha256 beside every checkpoint file the trainer writes.

The sidecar holds `<sha256>  <name>` lines, newest first: for RUN/checkpoint.pt the digest of the file
being written and of the one it replaces (the sidecar is written before the checkpoint's rename, so a
crash between the two leaves the old file, which still matches), for a kept copy or a snapshot its one
digest. A file whose digest is none of them is damaged; a file without a sidecar (written before
sidecars existed, or by another program) is read as it is.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from spixwalk.files import write_atomic

SUFFIX = ".sha256"


class Damaged(Exception):
    """A checkpoint whose bytes are not the ones written: one line naming the file."""


def sidecar(path) -> Path:
    path = Path(path)
    return path.with_name(path.name + SUFFIX)


def sha256_of(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def recorded(path) -> list[str]:
    """The digests the sidecar of `path` accepts, newest first ([] without a sidecar)."""
    try:
        text = sidecar(path).read_text()
    except FileNotFoundError:
        return []
    return [line.split()[0] for line in text.splitlines() if line.strip()]


def record(path, digest: str, keep_previous: bool = False) -> None:
    """Write the sidecar of `path` (atomically) accepting `digest`, and the newest one it accepted before
    when `keep_previous` (the file is about to be replaced by rename)."""
    old = recorded(path)[:1] if keep_previous else []
    name = Path(path).name
    write_atomic(sidecar(path), "".join(f"{d}  {name}\n" for d in dict.fromkeys([digest, *old])))


def check(path) -> bool:
    """Raise Damaged if `path` has a sidecar and matches none of its digests; whether it had one."""
    want = recorded(path)
    if not want:
        return False
    have = sha256_of(path)
    if have not in want:
        raise Damaged(f"{path}: damaged, its sha256 ({have[:12]}...) is not the one recorded in "
                      f"{sidecar(path).name} ({want[0][:12]}...)")
    return True
