"""Files written so that a reader never sees a part of one, and output paths checked before any work.

atomic_path / write_atomic   every file written under a temporary name and renamed into place
check_out                    an output path that can be written, checked before any work
replace_dir                  a finished folder swapped into place
fsync_dir                    a rename made durable
"""
from __future__ import annotations

import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def fsync_dir(path) -> None:
    """Make a rename inside folder `path` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path, suffix: str = "") -> Iterator[Path]:
    """A temporary name beside `path` to write the whole file to; when the block ends normally the file is
    fsynced and renamed over `path` and the folder fsynced, so readers see the old file or the new one,
    never a part; when it raises, the temporary file is removed. The name is unique across processes and
    hosts (several tasks may write the same file); `suffix` ends it where a writer wants an extension
    (ffmpeg chooses its format by it)."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}{suffix}")
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_atomic(path, data: str | bytes) -> Path:
    """Write text or bytes to `path` through `atomic_path`."""
    with atomic_path(path) as tmp:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data)
    return Path(path)


def check_out(path, option: str = "--out", folder: bool = False) -> None:
    """ValueError naming `option` unless `path` can be created as a file (or, `folder`, a folder): its first
    existing ancestor must be a writable folder, and the path itself not the other kind."""
    p = Path(os.path.abspath(path))
    if p.exists() and p.is_dir() != folder:
        raise ValueError(f"{option} {path}: exists and is {'not ' if folder else ''}a folder")
    parent = p.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"{option} {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {path}: {parent} is not writable")


def replace_dir(tmp: Path, final: Path) -> None:
    """Replace folder `final` by the completed folder `tmp`, so a crash never leaves a half-written one."""
    tmp, final = Path(tmp), Path(final)
    if final.exists():
        old = final.with_name(final.name + ".old")
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
    fsync_dir(final.parent)
