"""ffmpeg: the binary every stage runs, and RGB frames written as a playable mp4.

ffmpeg_exe                   the ffmpeg binary: a system one when present, else imageio-ffmpeg's
Mp4Writer                    RGB frames piped to ffmpeg as a playable mp4 (libx264, else mpeg4; yuv420p)
"""
from __future__ import annotations

import shutil
import subprocess
from contextlib import ExitStack
from functools import lru_cache
from pathlib import Path

from .files import atomic_path


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
