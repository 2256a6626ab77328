"""Low-level helpers every stage may import (data_manifest included: this module imports no stage).

atomic_path / write_atomic   every file written under a temporary name and renamed into place
check_out                    an output path that can be written, checked before any work
replace_dir                  a finished folder swapped into place
ffmpeg_exe                   the ffmpeg binary: a system one when present, else imageio-ffmpeg's
Mp4Writer                    RGB frames piped to ffmpeg as a playable mp4 (libx264, else mpeg4; yuv420p)
resolve_device               --device auto|cpu|cuda|cuda:N -> a torch.device
stage_parser                 a stage's ArgumentParser: usage names the command as typed, --help shows defaults
"""
from __future__ import annotations

import argparse
import copy
import os
import shutil
import subprocess
import uuid
from contextlib import ExitStack, contextmanager
from functools import lru_cache
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


@lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """The ffmpeg binary: the system's when on PATH, else the one the imageio-ffmpeg wheel carries."""
    exe = shutil.which("ffmpeg")
    if exe:
        return exe
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@lru_cache(maxsize=1)
def video_codec() -> str:
    """libx264 where this ffmpeg build has it (smaller, plays everywhere), else mpeg4, which every build has."""
    listing = subprocess.run([ffmpeg_exe(), "-hide_banner", "-encoders"], capture_output=True, text=True).stdout
    return "libx264" if any(line.split()[1:2] == ["libx264"] for line in listing.splitlines()) else "mpeg4"


class Mp4Writer:
    """RGB uint8 frames of one size -> an mp4 at `path`, written atomically: the file appears at close().

    yuv420p, the pixel format players expect, needs even sides: an odd height or width gets one black row or
    column. As a context manager, an exception inside aborts: ffmpeg is stopped and no file is left."""

    def __init__(self, path, fps: float = 24.0, codec: str | None = None, crf: int = 18):
        self.path, self.fps, self.codec, self.crf = Path(path), fps, codec or video_codec(), crf
        self.proc, self.frames, self._stack = None, 0, ExitStack()
        self.tmp = self._stack.enter_context(atomic_path(self.path, suffix=".mp4"))  # ffmpeg picks mp4 by the name

    def _start(self, h: int, w: int) -> None:
        quality = ["-crf", str(self.crf)] if self.codec == "libx264" else ["-q:v", "2"]
        self.proc = subprocess.Popen(
            [ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
             "-r", f"{self.fps:g}", "-i", "-", "-c:v", self.codec, *quality, "-pix_fmt", "yuv420p", str(self.tmp)],
            stdin=subprocess.PIPE, stderr=subprocess.PIPE)

    def write(self, frame) -> None:
        import numpy as np

        h, w = frame.shape[:2]
        frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)))
        if self.proc is None:
            self._start(*frame.shape[:2])
        self.proc.stdin.write(np.ascontiguousarray(frame, dtype=np.uint8).tobytes())
        self.frames += 1

    def close(self) -> Path:
        """Finish the file; ffmpeg's complaint, or no frame at all, raises (and leaves no file)."""
        try:
            if self.proc is None:
                raise ValueError(f"{self.path}: no frames to write")
            self.proc.stdin.close()
            err = self.proc.stderr.read().decode(errors="replace").strip()
            if self.proc.wait() != 0:
                raise RuntimeError(f"ffmpeg ({self.codec}) failed writing {self.path}: {err[-500:]}")
        except BaseException:
            self.abort()
            raise
        self._stack.close()
        return self.path

    def abort(self) -> None:
        """Stop ffmpeg and remove the partial file."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        # atomic_path's failure branch removes the temporary file
        self._stack.__exit__(RuntimeError, RuntimeError(f"{self.path}: aborted"), None)

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if kind is None:
            self.close()
        else:
            self.abort()
        return False


def resolve_device(name: str = "auto"):
    """auto: the first CUDA device when there is one, else the CPU; cuda without a visible device is a
    ValueError naming the option."""
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: no CUDA device visible")
    device = torch.device(name)
    return torch.device("cuda", torch.cuda.current_device()) if device.type == "cuda" and device.index is None else device


COMMAND: str | None = None  # set by spixwalk.cli to the command being run ("spixwalk train"), for usage lines


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's default in --help, options without help text included; None / False defaults (unset,
    flags) are not shown."""

    def _format_action(self, action):
        if not action.help and action.option_strings and action.default not in (None, False, argparse.SUPPRESS):
            action = copy.copy(action)  # argparse lists an option's help line only when it has help text
            action.help = "(default: %(default)s)"
        return super()._format_action(action)

    def _get_help_string(self, action):
        if action.default in (None, False) or "%(default)" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def stage_parser(prog: str, **kwargs) -> argparse.ArgumentParser:
    """ArgumentParser of a stage command line, prog as run with `python -m` ("python -m train export"): under
    the spixwalk command its usage says what was typed ("spixwalk train export")."""
    if COMMAND:
        prog = " ".join([COMMAND, *prog.split()[3:]])
    return argparse.ArgumentParser(prog=prog, formatter_class=DefaultsHelpFormatter, **kwargs)


def show_defaults(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """DefaultsHelpFormatter for p's subcommands too (argparse does not pass it on)."""
    p.formatter_class = DefaultsHelpFormatter
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                show_defaults(sub)
    return p
