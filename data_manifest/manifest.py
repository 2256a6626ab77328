"""The manifest: one JSON line per video (id, path, label, bytes, shard, kind, fps).

Shards are contiguous runs of `shard_size` videos in id order. Rebuilding over a grown folder keeps
every existing line and shard as it was and puts only the new videos into new shards after the last
one, so finished shards are never reshuffled.
"""
import json
import os
from dataclasses import asdict

from spixwalk.files import atomic_path

from .scan import Entry


def read(path) -> list[dict]:
    """The rows of a manifest, checked: a malformed row or a repeated id raises ValueError naming the file
    and line (one id names one video: the store indexes videos by id)."""
    rows, first = [], {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = _checked(json.loads(line))
                if row["id"] in first:
                    raise ValueError(f"id {row['id']!r} repeats line {first[row['id']]}")
            except ValueError as e:  # json.JSONDecodeError is a ValueError
                raise ValueError(f"{path}:{n}: malformed manifest row: {e}") from None
            first[row["id"]] = n
            rows.append(row)
    return rows


def _checked(row) -> dict:
    if not isinstance(row, dict):
        raise ValueError("not a JSON object")
    missing = [k for k in ("id", "path", "shard") if k not in row]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    for k in ("id", "path"):
        if not isinstance(row[k], str) or not row[k]:
            raise ValueError(f"{k} must be a non-empty string, got {row[k]!r}")
    if isinstance(row["shard"], bool) or not isinstance(row["shard"], int) or row["shard"] < 0:
        raise ValueError(f"shard must be an integer >= 0, got {row['shard']!r}")
    return row


def by_shard(path) -> dict[int, list[dict]]:
    """Shard -> rows of a manifest (checked by `read`), video paths made absolute: tasks may run in another
    working directory."""
    shards: dict[int, list[dict]] = {}
    for row in read(path):
        row["path"] = os.path.abspath(row["path"])
        shards.setdefault(row["shard"], []).append(row)
    return dict(sorted(shards.items()))


def remap(existing: list[dict], entries: list[Entry]) -> tuple[list[dict], int, list[str]]:
    """Existing rows with the path and size the scan found now (same id, same shard).

    A dataset moved or copied to another root keeps its shards and gets its current paths instead of
    stale ones. Returns (rows, number of rows whose path changed, ids the scan no longer finds).
    """
    found = {e.id: e for e in entries}
    rows, moved, gone = [], 0, []
    for row in existing:
        e = found.get(row["id"])
        if e is None:
            gone.append(row["id"])
            rows.append(row)
            continue
        moved += e.path != row["path"]
        rows.append(dict(row, path=e.path, bytes=e.bytes))
    return rows, moved, gone


def assign(entries: list[Entry], shard_size: int, existing: list[dict] = ()) -> list[dict]:
    """Existing rows unchanged, then rows for entries not yet listed (by id), in new shards."""
    if shard_size <= 0:
        raise ValueError(f"--shard-size must be > 0, got {shard_size}")
    known = {row["id"] for row in existing}
    first = max((row["shard"] for row in existing), default=-1) + 1
    new = [e for e in entries if e.id not in known]
    rows = [dict(asdict(e), shard=first + i // shard_size) for i, e in enumerate(new)]
    return list(existing) + rows


def write(rows: list[dict], path: str) -> None:
    """Atomic write (temp file + rename) so a killed build never leaves half a manifest."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        for row in rows:
            f.write(json.dumps(row, sort_keys=True) + "\n")
