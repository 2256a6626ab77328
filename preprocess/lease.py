"""One writer per shard: an exclusively created lease file beside the shard, kept alive by a heartbeat.

STORE/shard-00007.lease holds {host, pid, token, since}; its mtime is the heartbeat, touched every
HEARTBEAT_S by a thread of the holder. O_CREAT|O_EXCL is atomic on local filesystems and on NFSv3+ /
Lustre / GPFS, so exactly one task creates it. A lease is stale when its heartbeat is older than
STALE_S (the holder died or hangs; clocks of cluster nodes agree to seconds, not minutes), when its
holder is a dead pid on this host (taken over at once), or when it cannot be read: leases appear whole
(written to a temp name, then hard-linked into place, which fails if one exists), so an empty or
partial one is a dead writer's. Taking over a stale lease goes through a second exclusive file of the
same kind (the lease name + ".takeover"), so two tasks that both find it stale cannot both take it, and
a guard left by a dead taker is stale at once.
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from pathlib import Path

from spixwalk.files import write_atomic

HEARTBEAT_S = 10.0
STALE_S = 120.0


class Busy(Exception):
    """The shard is held by a live task; the message names it."""


def lease_path(root, shard: int) -> Path:
    return Path(root) / f"shard-{shard:05d}.lease"


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):  # gone, or not JSON / not text
        return None


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
    return not isinstance(info, dict) or _dead_here(info) or age > stale_s  # unreadable: never a live Lease's


def _dead_here(info: dict) -> bool:
    """The holder is a process of this host that no longer exists."""
    try:
        pid = int(info.get("pid", -1))
    except (TypeError, ValueError):
        return False
    return info.get("host") == socket.gethostname() and not _pid_alive(pid)


def _create_whole(path: Path, payload: bytes, token: str) -> bool:
    """Create `path` holding `payload`, atomically and only if it does not exist (link(2) fails then)."""
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}-{token[:8]}")
    with open(tmp, "wb") as f:
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    except OSError:  # a filesystem without hard links: exclusive create, then one small write
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
    finally:
        tmp.unlink(missing_ok=True)
    return True


def holder(path: Path) -> str:
    info = _read(path)
    info = info if isinstance(info, dict) else {}
    return f"{info.get('host', '?')}:{info.get('pid', '?')}"


def describe(path: Path, stale_s: float = STALE_S) -> str:
    """'host:pid, live' or 'host:pid, stale (why)': for `preprocess status`."""
    if not is_stale(path, stale_s):
        return f"{holder(path)}, live"
    info = _read(path)
    if not isinstance(info, dict):
        return "unreadable, stale (taken over at once)"
    if _dead_here(info):
        return f"{holder(path)}, stale (pid dead; taken over at once)"
    return f"{holder(path)}, stale (no heartbeat for {_age(path):.0f} s)"


class Lease:
    """`with Lease(root, shard):` holds the shard or raises Busy. held() re-checks before each write."""

    def __init__(self, root, shard: int, heartbeat_s: float = HEARTBEAT_S, stale_s: float = STALE_S):
        self.path = lease_path(root, shard)
        self.heartbeat_s, self.stale_s = heartbeat_s, stale_s
        self.token = uuid.uuid4().hex
        self._stop = threading.Event()
        self._thread = None
        self._seen = None  # the lease file as held() last read it: who holds it once we do not

    def _payload(self) -> bytes:
        return json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "token": self.token,
                           "since": time.time()}).encode()

    def _create(self) -> bool:
        return _create_whole(self.path, self._payload(), self.token)

    def _take_over(self) -> bool:
        guard = self.path.with_name(self.path.name + ".takeover")
        if is_stale(guard, self.stale_s):  # a task that died mid-takeover
            guard.unlink(missing_ok=True)
        if not _create_whole(guard, self._payload(), self.token):
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
        for tmp in self.path.parent.glob(self.path.name + "*.tmp-*"):  # of writers that died before linking
            age = _age(tmp)
            if age is not None and age > self.heartbeat_s:  # a live writer links within microseconds
                tmp.unlink(missing_ok=True)
        self._thread = threading.Thread(target=self._beat, daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            if self.held():
                os.utime(self.path)

    def held(self) -> bool:
        info = _read(self.path)
        self._seen = info if isinstance(info, dict) else None
        return self._seen is not None and info.get("token") == self.token

    def taken_by(self) -> str:
        """Who held the lease when held() last found it lost: 'host:pid', or why that is not known."""
        if self._seen is None:
            return "another task (its lease is gone or unreadable now)"
        return f"{self._seen.get('host', '?')}:{self._seen.get('pid', '?')}"

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
