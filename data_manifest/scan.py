"""Find the videos under a folder without decoding anything (stat only).

Layouts: Kinetics-400 `<split>/<class>/<id>.mp4`, flat Kinetics files plus the official CSV
(label,youtube_id,time_start,time_end,split), any folder of video files, and folders of JPEG
frames (YouTube-VOS / DAVIS `JPEGImages/<seq>/00000.jpg`), each frame folder counting as one video.
"""
import csv
import os
import time
from dataclasses import dataclass
from pathlib import Path

VIDEO_EXTS = {".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".ogv", ".3gp"}
FRAME_EXTS = {".jpg", ".jpeg", ".png"}
PROGRESS_S = 2.0
KINETICS_SPLITS = {"train", "val", "valid", "validate", "validation", "test"}


@dataclass(frozen=True)
class Entry:
    id: str
    path: str
    label: str | None
    bytes: int
    kind: str  # "video" or "frames"
    fps: float | None = None


def _walk(root: str, skipped: list):
    """Yield (dirpath, video files [(name, size)], frame files [(name, size)]) for every folder, sorted.
    Symlinks are followed, each folder once; what cannot be read (a dangling link, a symlink loop, a
    folder without permission) is appended to `skipped` as (path, reason) and left out."""
    stack, seen = [root], set()
    while stack:
        d = stack.pop()
        try:
            st = os.stat(d)
            if (st.st_dev, st.st_ino) in seen:
                skipped.append((d, "a folder already listed (symlink loop)"))
                continue
            seen.add((st.st_dev, st.st_ino))
            listing = _listing(d)
        except OSError as e:
            skipped.append((d, e.strerror or type(e).__name__))
            continue
        videos, frames, subdirs = [], [], []
        for path, name, is_dir, size in listing:
            if isinstance(size, OSError):
                skipped.append((path, size.strerror or type(size).__name__))
            elif is_dir:
                subdirs.append(path)
            elif os.path.splitext(name)[1].lower() in VIDEO_EXTS:
                videos.append((name, size))
            elif os.path.splitext(name)[1].lower() in FRAME_EXTS:
                frames.append((name, size))
        yield d, sorted(videos), frames
        stack.extend(sorted(subdirs, reverse=True))


def _listing(d: str) -> list:
    """(path, name, is a folder, size or the OSError that stat raised) of the entries of folder d."""
    out = []
    with os.scandir(d) as it:
        for e in it:
            try:
                is_dir = e.is_dir(follow_symlinks=True)
                size = 0 if is_dir else (e.stat().st_size if _listed_ext(e.name) else 0)
            except OSError as err:  # ELOOP (a link to itself), ENOENT (dangling), EACCES
                is_dir, size = False, err
            out.append((e.path, e.name, is_dir, size))
    return out


def _listed_ext(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in VIDEO_EXTS | FRAME_EXTS


def _kinetics_labels(csv_path: str) -> dict[str, str]:
    """youtube_id -> label from the official Kinetics CSV (label,youtube_id,time_start,time_end,split)."""
    with open(csv_path, newline="") as f:
        return {row["youtube_id"]: row["label"] for row in csv.DictReader(f)}


def _label_from_dirs(rel_dir: str) -> str | None:
    parts = [p for p in Path(rel_dir).parts if p not in (".", "")]
    if len(parts) >= 2 and parts[0].lower() in KINETICS_SPLITS:
        return "/".join(parts[1:])
    return "/".join(parts) if parts else None


def scan(videos_dir: str, annotations: str | None = None, frames_fps: float = 30.0,
         progress=None, skipped: list | None = None) -> list[Entry]:
    """All videos under `videos_dir`, sorted by id (deterministic for a given tree).

    progress(entries so far, folders so far) is called about every PROGRESS_S seconds; entries that cannot
    be read (dangling links, symlink loops) are left out and appended to `skipped` as (path, reason).
    """
    root = os.path.abspath(videos_dir)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{videos_dir}: not a folder")
    labels = _kinetics_labels(annotations) if annotations else None
    entries, t_last = [], time.monotonic()
    skipped = [] if skipped is None else skipped
    for n_dirs, (d, videos, frames) in enumerate(_walk(root, skipped), 1):
        if progress is not None and time.monotonic() - t_last > PROGRESS_S:
            progress(len(entries), n_dirs)
            t_last = time.monotonic()
        rel_dir = os.path.relpath(d, root)
        dir_label = _label_from_dirs(rel_dir)
        for name, size in videos:
            stem = os.path.splitext(name)[0]
            rel_id = stem if rel_dir == "." else f"{Path(rel_dir).as_posix()}/{stem}"
            label = dir_label
            if labels is not None:
                # Kinetics file names are <youtube_id>_<start:06d>_<end:06d>; youtube ids may hold '_'.
                yid = stem[:-14] if len(stem) > 14 and stem[-14] == "_" and stem[-7] == "_" else stem
                label = labels.get(yid, labels.get(stem, dir_label))
            entries.append(Entry(rel_id, os.path.join(d, name), label, size, "video"))
        if frames and rel_dir != ".":
            label = _label_from_dirs(str(Path(rel_dir).parent))
            entries.append(Entry(Path(rel_dir).as_posix(), d, label, sum(s for _, s in frames), "frames", frames_fps))
    entries.sort(key=lambda e: e.id)
    return entries
