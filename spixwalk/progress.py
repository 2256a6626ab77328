"""Progress on stderr for every stage: a tqdm bar on a terminal; elsewhere (logs, CI, pipes) one line per
LINE_PCT percent, so a log shows how far a job got without thousands of carriage returns.

SPIXWALK_PROGRESS=bar|lines|off forces a mode (default auto: bar on a TTY, else lines). Progress only
reads the counts it is given: it never touches a result, a statistic or a file a stage writes.

A stream whose reader is gone (`... 2>&1 | tee log` with the group signalled: tee died first) must not end
a stage that is saving its work: every write here (and `say`) turns EPIPE into silence on that stream.
"""
from __future__ import annotations

import errno
import os
import sys
import time
from contextlib import contextmanager

LINE_PCT = 10
MODES = ("auto", "bar", "lines", "off")


def mode(enabled: bool = True, file=None) -> str:
    """bar, lines or off for a stream (stderr by default) and the SPIXWALK_PROGRESS variable."""
    want = os.environ.get("SPIXWALK_PROGRESS", "auto").lower()
    if not enabled or want == "off":
        return "off"
    if want in ("bar", "lines"):
        return want
    file = file or sys.stderr
    try:
        tty = file.isatty()
    except (AttributeError, ValueError):
        tty = False
    return "bar" if tty else "lines"


@contextmanager
def quiet_if_closed(file):
    """Writes to `file` in the block; if its reader is gone (EPIPE), the stream is pointed at /dev/null
    (later writes and the interpreter's last flush succeed) and the block ends quietly."""
    try:
        yield
    except OSError as e:
        if e.errno != errno.EPIPE:
            raise
        _to_devnull(file)


def _to_devnull(file) -> None:
    try:
        fd = file.fileno()
    except (AttributeError, ValueError, OSError):
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, fd)
    finally:
        os.close(null)


def say(*args, file=None, **kw) -> None:
    """print(..., flush=True) that goes quiet when the stream's reader is gone (see quiet_if_closed)."""
    file = file or sys.stdout
    with quiet_if_closed(file):
        print(*args, file=file, flush=True, **kw)


def _hms(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60:02d}:{s % 60:02d}"


class Progress:
    """A count towards `total` (None: unknown) with an ETA; `note(**fields)` adds fields shown beside it.

    update() costs a few attribute writes between printed lines, so a training loop may call it every step."""

    def __init__(self, total: int | None, desc: str, unit: str = "it", initial: int = 0, enabled: bool = True,
                 file=None):
        self.total, self.desc, self.unit, self.n, self.initial = total, desc, unit, initial, initial
        self.file, self.fields, self.mode = file or sys.stderr, {}, mode(enabled, file)
        self.t0, self._last_bucket, self._closed, self._printed = time.perf_counter(), -1, False, None
        self._bar = None
        if self.mode == "bar":
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, file=self.file, dynamic_ncols=True)
        elif self.mode == "lines":
            self._last_bucket = self._bucket()
            self._line()  # the start: a log shows the total before the first step ends

    def _bucket(self) -> int:
        return int(100 * self.n / self.total // LINE_PCT) if self.total else -1

    def update(self, n: float = 1) -> None:
        self.set(self.n + n)

    def set(self, n: float) -> None:
        """The count is now n (for callers that learn totals, e.g. from finished tasks)."""
        if self.mode == "bar":
            with quiet_if_closed(self.file):
                self._bar.update(n - self.n)
        self.n = n
        if self.mode == "lines" and self.total and self._bucket() > self._last_bucket:
            self._last_bucket = self._bucket()
            self._line()

    def note(self, **fields) -> None:
        """Fields shown after the count (the bar redraws them at its next refresh, not on every call)."""
        self.fields.update(fields)
        if self._bar is not None:
            self._bar.set_postfix_str(self._fields(), refresh=False)

    def _fields(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.fields.items())

    def _line(self) -> None:
        elapsed = time.perf_counter() - self.t0
        done = self.n - self.initial
        parts = [f"{self.desc}: {self.n:g}" + (f"/{self.total} {self.unit}" if self.total else f" {self.unit}")]
        if self.total:
            parts[0] += f" ({100 * self.n / self.total:.0f}%)"
        parts.append(f"{_hms(elapsed)} elapsed")
        if self.total and 0 < done and self.n < self.total:
            parts.append(f"ETA {_hms(elapsed / done * (self.total - self.n))}")
        if self.fields:
            parts.append(self._fields())
        say(", ".join(parts), file=self.file)
        self._printed = self.n

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            with quiet_if_closed(self.file):
                self._bar.close()
        elif self.mode == "lines" and self._printed != self.n:
            self._line()  # where the count stopped short (a failure, a budget) or never had a total

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def track(iterable, total: int | None = None, desc: str = "", unit: str = "it", enabled: bool = True, file=None):
    """The items of iterable, counted by a Progress."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    with Progress(total, desc, unit, enabled=enabled, file=file) as p:
        for item in iterable:
            yield item
            p.update()
