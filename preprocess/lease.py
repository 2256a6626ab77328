"""One writer per shard: an exclusively created lease file beside the shard, kept alive by a heartbeat.

STORE/shard-00007.lease holds {host, pid, token, since}; its mtime is the heartbeat, touched every
HEARTBEAT_S by a thread of the holder. O_CREAT|O_EXCL is atomic on local filesystems and on NFSv3+ /
Lustre / GPFS, so exactly one task creates it. A lease is stale when its heartbeat is older than
STALE_S (the holder died or hangs; clocks of cluster nodes agree to seconds, not minutes) or when
its holder is a dead pid on this host. Taking over a stale lease goes through a second exclusive
file (the lease name + ".takeover"), so two tasks that both find it stale cannot both take it.
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from pathlib import Path

from spixwalk.common import write_atomic

HEARTBEAT_S = 10.0
STALE_S = 120.0


class Busy(Exception):
    """The shard is held by a live task; the message names it."""


def lease_path(root, shard: int) -> Path:
    return Path(root) / f"shard-{shard:05d}.lease"


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None  # a lease being written is a few bytes and one write: treat as unreadable/busy


def _age(path: Path) -> float | None:
    try:
        return time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_stale(path: Path, stale_s: float = STALE_S) -> bool:
    age = _age(path)
    if age is None:
        return False
    info = _read(path)
    if info and info.get("host") == socket.gethostname() and not _pid_alive(int(info.get("pid", -1))):
        return True
    return age > stale_s


def holder(path: Path) -> str:
    info = _read(path) or {}
    return f"{info.get('host', '?')}:{info.get('pid', '?')}"


class Lease:
    """`with Lease(root, shard):` holds the shard or raises Busy. held() re-checks before each write."""

    def __init__(self, root, shard: int, heartbeat_s: float = HEARTBEAT_S, stale_s: float = STALE_S):
        self.path = lease_path(root, shard)
        self.heartbeat_s, self.stale_s = heartbeat_s, stale_s
        self.token = uuid.uuid4().hex
        self._stop = threading.Event()
        self._thread = None

    def _payload(self) -> bytes:
        return json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "token": self.token,
                           "since": time.time()}).encode()

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as f:
            f.write(self._payload())
            f.flush()
            os.fsync(f.fileno())
        return True

    def _take_over(self) -> bool:
        guard = self.path.with_name(self.path.name + ".takeover")
        if is_stale(guard, self.stale_s):  # a task that died mid-takeover
            guard.unlink(missing_ok=True)
        try:
            os.close(os.open(guard, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            return False
        try:
            if not is_stale(self.path, self.stale_s):
                return self._create()  # the stale lease went away meanwhile, or came back alive
            write_atomic(self.path, self._payload())
            return True
        finally:
            guard.unlink(missing_ok=True)

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not (self._create() or (is_stale(self.path, self.stale_s) and self._take_over())):
            raise Busy(f"held by {holder(self.path)}")
        self._thread = threading.Thread(target=self._beat, daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            if self.held():
                os.utime(self.path)

    def held(self) -> bool:
        info = _read(self.path)
        return bool(info) and info.get("token") == self.token

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.held():
            self.path.unlink(missing_ok=True)

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()
