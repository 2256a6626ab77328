"""Video -> uint8 RGB frames (n, size, size, 3) at a fixed frame rate, via one ffmpeg process."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import cv2
import numpy as np

from spixwalk.video import ffmpeg_exe

from .spconfig import FRAME_RATE, FRAME_SIZE

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
MIN_FRAMES = 4  # a clip of T=4 must fit


class DecodeError(Exception):
    """A video that cannot be used; the message is the reason recorded in the shard stats."""


def ffmpeg_command(path, fps: float, size: int) -> list[str]:
    """One ffmpeg process: the video at `fps`, area-resized to size x size, as raw RGB on stdout."""
    graph = f"[0]fps=fps={fps}[s0];[s0]scale={size}:{size}:flags=area[s1]"
    return [ffmpeg_exe(), "-threads", "1", "-i", str(path), "-filter_complex", graph, "-map", "[s1]",
            "-f", "rawvideo", "-an", "-pix_fmt", "rgb24", "-sn", "-threads", "1", "pipe:",
            # explode on damaged streams: a truncated file must fail, not yield a silently short video
            "-nostdin", "-hide_banner", "-loglevel", "error", "-xerror", "-err_detect", "explode"]


def decode_video(path, fps: float = FRAME_RATE, size: int = FRAME_SIZE, timeout: float = 600.0) -> np.ndarray:
    """Decode a video file at `fps`, resized to size x size. Raises DecodeError with a short reason."""
    p = Path(path)
    if not p.exists():
        raise DecodeError("missing file")
    if p.is_file() and p.stat().st_size == 0:
        raise DecodeError("zero-byte file")
    try:
        proc = subprocess.run(ffmpeg_command(p, fps, size), capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise DecodeError(f"ffmpeg timed out after {timeout:g} s") from None
    err = proc.stderr.decode(errors="replace").strip()
    if proc.returncode != 0:
        if "matches no streams" in err or "filtergraph" in err:
            raise DecodeError("no video stream (audio-only or not a video)")
        last = err.splitlines()[-1] if err else f"exit code {proc.returncode}"
        raise DecodeError(f"ffmpeg failed: {last[:300]}")
    n = len(proc.stdout) // (size * size * 3)
    if n == 0:
        k = _source_frames(p, timeout)  # the fps filter drops a video shorter than one output frame
        if k:
            raise DecodeError(f"too short: {k} frame{'s' * (k > 1)} in the file (< {MIN_FRAMES})")
        raise DecodeError("no video frames (audio-only or not a video)")
    frames = np.frombuffer(proc.stdout, np.uint8, n * size * size * 3).reshape(n, size, size, 3)
    if n < MIN_FRAMES:
        raise DecodeError(f"too short: {n} frames at {fps:g} fps (< {MIN_FRAMES})")
    return frames


def _source_frames(p: Path, timeout: float) -> int:
    """Frames of the file's first video stream, counted up to MIN_FRAMES (0: none, or no video stream)."""
    cmd = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-i", str(p), "-map", "0:v:0",
           "-frames:v", str(MIN_FRAMES), "-s", "8x8", "-f", "rawvideo", "-pix_fmt", "gray", "-"]
    try:
        out = subprocess.run(cmd, capture_output=True, timeout=timeout).stdout
    except subprocess.TimeoutExpired:
        return 0
    return len(out) // 64


def decode_folder(path, fps: float = FRAME_RATE, size: int = FRAME_SIZE, src_fps: float = 30.0) -> np.ndarray:
    """A folder of image files taken as a video at `src_fps` (YouTube-VOS / DAVIS JPEGImages)."""
    files = sorted(f for f in os.listdir(path) if f.lower().endswith(IMAGE_EXTS))
    if not files:
        raise DecodeError("folder holds no image frames")
    # frame k of the output is the source frame shown at time k / fps
    n_out = max(1, int(np.floor(len(files) * fps / src_fps + 1e-9)))
    pick = np.minimum((np.arange(n_out) * src_fps / fps + 1e-9).astype(int), len(files) - 1)
    if n_out < MIN_FRAMES:
        raise DecodeError(f"too short: {n_out} frames at {fps:g} fps (< {MIN_FRAMES})")
    out = np.empty((n_out, size, size, 3), np.uint8)
    for k, i in enumerate(pick):
        img = cv2.imread(os.path.join(path, files[i]), cv2.IMREAD_COLOR)
        if img is None:
            raise DecodeError(f"unreadable frame {files[i]}")
        out[k] = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)[:, :, ::-1]
    return out


def decode(path, fps: float = FRAME_RATE, size: int = FRAME_SIZE, timeout: float = 600.0, src_fps: float | None = None):
    if Path(path).is_dir():
        return decode_folder(path, fps, size, src_fps or 30.0)
    return decode_video(path, fps, size, timeout)
