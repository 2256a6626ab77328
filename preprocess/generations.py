"""The generations of a shard's units, in one home: where a unit lives, which generation of it counts
(committed, and for label maps of the followed frames' lineage), reserving, committing, copying and pruning
them. preprocess/store.py writes and reads the arrays inside a generation; nothing else of a generation's
life is decided there.

Fenced commits: each attempt at a unit of a shard writes its own generation and commits it in one step.
A unit is a shard's frames (STORE/shard-K/frames/) or one label configuration (STORE/shard-K/labels/<cfg>/).
An attempt creates its generation folder in one mkdir, named NNNNNN-<token>-<pid>@<host>: a number above
every generation of the unit it can see, a token of its own, and its writer. It then checks its claim and
writes only inside that folder; it commits by writing the unit's marker inside it, last (temp + fsync +
rename: the one step that makes the generation count). Readers follow the highest-numbered generation that
holds its marker (for label maps: whose marker names the frames' lineage) and nothing else.

Why a task that lost its claim cannot make the store claim what it does not hold, wherever it was paused:
- a committed generation is never written again, and a generation is deleted only when it can never be
  followed again (prune): below a committed one, of a dead frames lineage, or written by a dead process;
- an attempt that checked its claim after creating generation g is seen by every later holder, whose
  generations are numbered above g: what it commits late is outranked by the later holder's commit and,
  until that lands, is its own whole work (its folder is still intact: its writer is alive);
- what it writes late into a generation that was deleted meanwhile lands in a folder below a committed one,
  without its data: never followed, removed by the next prune.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import uuid
from pathlib import Path

from spixwalk.files import fsync_dir, write_atomic

from spixwalk import faults
from .lease import _pid_alive  # the lease's liveness test, one home for it

NAME = re.compile(r"^(\d{6,})-([0-9a-f]{8})-(\d+)@(.+)$")
FRAMES_MARKER = "_done_frames.json"
HOST_CHARS = 64  # a folder name stays far below 255 bytes whatever the host's name


def _host() -> str:
    return socket.gethostname()[:HOST_CHARS]


def generations(unit: Path) -> list[tuple[int, Path]]:
    """(number, folder) of every generation of a unit, lowest first."""
    try:
        names = os.listdir(unit)
    except FileNotFoundError:
        return []
    found = [(int(m.group(1)), Path(unit) / n) for n in names if (m := NAME.match(n))]
    return sorted(found, key=lambda g: (g[0], g[1].name))


def read_marker(path: Path) -> dict | None:
    try:
        m = json.loads(Path(path).read_text())
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return None
    return m if isinstance(m, dict) else None


def committed(unit: Path, marker: str) -> tuple[Path, dict] | None:
    """The highest-numbered generation of a unit that holds its marker, and the marker."""
    for _, g in reversed(generations(unit)):
        m = read_marker(g / marker)
        if m is not None:
            return g, m
    return None


def _number(gen: Path) -> int:
    return int(NAME.match(gen.name).group(1))


def pending(unit: Path, marker: str) -> list[Path]:
    """Uncommitted generations above the committed one: being written, or left by a task that stopped."""
    top = committed(unit, marker)
    return [g for k, g in generations(unit) if top is None or (k >= _number(top[0]) and g != top[0])]


def reserve(unit: Path, point: str) -> Path:
    """A new generation folder numbered above every one of the unit; the caller checks its claim next."""
    unit = Path(unit)
    unit.mkdir(parents=True, exist_ok=True)
    n = 1 + max((k for k, _ in generations(unit)), default=0)
    faults.point(point)
    gen = unit / f"{n:06d}-{uuid.uuid4().hex[:8]}-{os.getpid()}@{_host()}"
    gen.mkdir()  # a name of its own: never an existing folder, never reused after a delete
    fsync_dir(unit)
    return gen


def commit(gen: Path, marker: str, payload: dict, point: str) -> None:
    """Write the marker, last: the generation counts from here on (its data were fsynced before)."""
    faults.point(point)
    write_atomic(gen / marker, json.dumps(payload, indent=1, sort_keys=True))


def writer_dead(gen: Path) -> bool:
    """The process named in a generation's folder name is gone (decidable on its own host only)."""
    m = NAME.match(gen.name)
    return bool(m) and m.group(4) == _host() and not _pid_alive(int(m.group(3)))


def dead(unit: Path, marker: str, alive_lineage=None) -> list[Path]:
    """Generations that can never be followed again: below the highest committed one; that one too when
    alive_lineage(its marker) is false (labels of frames that were decoded again); uncommitted ones whose
    writer is a dead process. Deleting them is safe for any task at any time, claim or not."""
    gens = generations(unit)
    top = committed(unit, marker)
    out = []
    for k, g in gens:
        if top is not None and (k < _number(top[0]) or
                                (g == top[0] and alive_lineage is not None and not alive_lineage(top[1]))):
            out.append(g)
        elif (top is None or g != top[0]) and read_marker(g / marker) is None and writer_dead(g):
            out.append(g)
    return out


def prune_unit(unit: Path, marker: str, alive_lineage=None) -> int:
    gone = dead(unit, marker, alive_lineage)
    for g in gone:
        shutil.rmtree(g, ignore_errors=True)
    return len(gone)


# ---------------------------------------------------------------- a shard's units: its frames, its label maps


def labels_marker(cfg: str) -> str:
    return f"_done_{cfg}.json"


def frames_unit(sp: Path) -> Path:
    return Path(sp) / "frames"


def labels_unit(sp: Path, cfg: str) -> Path:
    return Path(sp) / "labels" / cfg


def frames_gen(sp: Path) -> tuple[Path, dict] | None:
    """The committed frames generation of a shard (folder, marker), or None while the frames are incomplete."""
    return committed(frames_unit(sp), FRAMES_MARKER)


def labels_gen(sp: Path, cfg: str, frames: tuple | None = None) -> tuple[Path, dict] | None:
    """The committed generation of cfg's label maps, if it was computed on the committed frames' lineage."""
    frames = frames or frames_gen(sp)
    got = committed(labels_unit(sp, cfg), labels_marker(cfg)) if frames else None
    return got if got and got[1].get("lineage") == frames[1].get("lineage") else None


def label_configs(sp: Path, frames: tuple | None = None) -> dict[str, tuple[Path, dict]]:
    """cfg -> committed labels generation, for every configuration complete on the shard's frames."""
    frames = frames or frames_gen(sp)
    names = sorted(p.name for p in (Path(sp) / "labels").glob("*") if p.is_dir()) if frames else []
    found = {c: labels_gen(sp, c, frames) for c in names}
    return {c: g for c, g in found.items() if g}


def units(sp: Path) -> list[tuple[Path, str]]:
    """(unit folder, marker name) of a shard's frames and of every label configuration it has a folder for."""
    cfgs = sorted(p.name for p in (Path(sp) / "labels").glob("*") if p.is_dir())
    return [(frames_unit(sp), FRAMES_MARKER), *((labels_unit(sp, c), labels_marker(c)) for c in cfgs)]


def prune(sp: Path) -> int:
    """Delete the generations of a shard that can never be followed again (dead)."""
    (frames, marker), *labels = units(sp)
    n = prune_unit(frames, marker)
    fg = frames_gen(sp)
    alive = (lambda m: m.get("lineage") == fg[1].get("lineage")) if fg else None
    return n + sum(prune_unit(unit, marker, alive) for unit, marker in labels)


def new_frames_gen(sp: Path) -> Path:
    return reserve(frames_unit(sp), "frames.reserve")


def new_labels_gen(sp: Path, cfg: str) -> Path:
    return reserve(labels_unit(sp, cfg), "labels.reserve")


def copy_into(src: Path, dst: Path, marker: str) -> None:
    """A committed generation's data into a new one (never linked: the new one is rewritten in place)."""
    skip = lambda folder, names: [n for n in names if n == marker or ".tmp-" in n or n.endswith(".partial")]  # noqa: E731
    shutil.copytree(src, dst, dirs_exist_ok=True, ignore=skip)


def commit_frames(gen: Path, payload: dict) -> None:
    commit(gen, FRAMES_MARKER, payload, "frames.commit")


def commit_labels(gen: Path, cfg: str, payload: dict) -> None:
    commit(gen, labels_marker(cfg), payload, "labels.commit")
