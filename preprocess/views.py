"""Looking at a store: the status table, the list of its videos, superpixel boundary overlays (`preprocess
status [--videos]`, `preprocess show`)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from spixwalk.files import check_out

from . import generations, store
from .lease import describe, holder, is_stale, lease_path


def status(root) -> list[dict]:
    """One row per shard folder: frames state, per configuration done / missing (committed generations only),
    and the uncommitted generations it holds (being written, or left by a stopped task)."""
    root = Path(root)
    rows, cfgs = [], set()
    for sp in sorted(root.glob("shard-[0-9]*")):
        if not sp.is_dir():  # shard-K.lease: a claim, not a shard
            continue
        store.check_layout(sp)
        fg = generations.frames_gen(sp)
        fm = fg[1] if fg else None
        lp = lease_path(root, int(sp.name[6:]))
        row = {"shard": int(sp.name[6:]), "frames": "done" if fm else "incomplete",
               "videos_ok": len(fm["ok"]) if fm else 0, "videos_failed": len(fm["failed"]) if fm else 0,
               "configs": {}, "failed": [dict(f, config=None) for f in fm["failed"]] if fm else [],
               "held_by": holder(lp) if lp.exists() and not is_stale(lp) else None,
               "uncommitted": [str(g.relative_to(sp)) for unit, marker in generations.units(sp)
                               for g in generations.pending(unit, marker)]}
        for cfg, (_, lm) in generations.label_configs(sp, fg).items():
            row["configs"][cfg] = "failed" if lm["failed"] else "done"
            row["failed"] += [dict(f, config=cfg) for f in lm["failed"]]
            cfgs.add(cfg)
        rows.append(row)
    for r in rows:
        for c in cfgs:
            r["configs"].setdefault(c, "missing")
    return rows


def videos(root) -> list[dict]:
    """One row per video with committed frames: shard, id, frames, and the label configurations complete for it."""
    r = store.StoreReader(root)
    have = {cfg: {(v.shard, v.video_id) for v in r.videos(cfg)} for cfg in r.configs()}
    return [{"shard": v.shard, "video": v.video_id, "frames": v.length,
             "configs": [c for c, ids in have.items() if (v.shard, v.video_id) in ids]} for v in r.videos()]


def print_videos(rows: list[dict]) -> None:
    width = max([len(r["video"]) for r in rows] + [5])
    print(f"{'shard':>6}  {'video':<{width}}  {'frames':>6}  label configurations complete")
    for r in rows:
        print(f"{r['shard']:>6}  {r['video']:<{width}}  {r['frames']:>6}  {', '.join(r['configs']) or '-'}")
    print(f"{len(rows)} videos, {sum(r['frames'] for r in rows)} frames")


def cmd_status(a) -> int:
    if not Path(a.store).is_dir():
        print(f"error: --store {a.store}: no such folder", file=sys.stderr)
        return 2
    if a.videos:
        rows = videos(a.store)
        print_videos(rows)
        if a.json:
            Path(a.json).write_text(json.dumps(rows, indent=1))
        return 0
    rows = status(a.store)
    for lp in sorted(Path(a.store).glob("shard-[0-9]*.lease")):
        print(f"lease {lp.name}: {describe(lp)}")
    if not rows:
        print(f"{a.store}: no shards")
        return 0
    cfgs = sorted({c for r in rows for c in r["configs"]})
    print(f"{'shard':>6} {'frames':>10} {'ok':>4} {'fail':>5} " + " ".join(f"{c:>20}" for c in cfgs))
    for r in rows:
        print(f"{r['shard']:>6} {r['frames']:>10} {r['videos_ok']:>4} {r['videos_failed']:>5} "
              + " ".join(f"{r['configs'][c]:>20}" for c in cfgs))
    done = sum(r["frames"] == "done" for r in rows)
    print(f"frames: {done}/{len(rows)} shards done")
    for r in rows:
        if r["held_by"]:
            print(f"shard {r['shard']}: being written by {r['held_by']}")
        for g in r["uncommitted"]:
            print(f"shard {r['shard']}: uncommitted generation {g} (being written, or left by a stopped task)")
    for c in cfgs:
        n = {s: sum(r["configs"][c] == s for r in rows) for s in ("done", "failed", "missing")}
        print(f"{c}: {n['done']} done, {n['failed']} with failed videos, {n['missing']} missing")
    failed = [(r["shard"], f) for r in rows for f in r["failed"]]
    if failed:
        print(f"failed videos ({len(failed)}; `--retry-failed` re-attempts them):")
    for shard, f in failed:
        where = f"{f['config']} labels" if f["config"] else "frames"
        print(f"  shard {shard}  {f.get('path') or f['id']}  [{where}]  {f['reason']}")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))
    return 0


def boundary_overlay(frames: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Frames side by side with superpixel boundaries drawn in yellow."""
    from skimage.segmentation import find_boundaries

    tiles = []
    for f, l in zip(frames, labels):
        t = f.copy()
        t[find_boundaries(l, mode="thick")] = (255, 230, 0)
        tiles.append(t)
    return np.concatenate(tiles, axis=1)


def cmd_show(a) -> int:
    import cv2

    try:
        check_out(a.out)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    r = store.StoreReader(a.store)
    cfgs = r.configs()
    cfg = a.config or (cfgs[0] if cfgs else None)
    if cfg is None:
        print(f"error: {a.store} has no complete label configuration")
        return 2
    refs = [v for v in r.videos(cfg) if v.video_id == a.video]
    if not refs:
        ids = [v.video_id for v in r.videos(cfg)][:10]
        print(f"error: video {a.video!r} not in {a.store} ({cfg}); some ids: {ids}")
        return 2
    ref = refs[0]
    picks = np.linspace(0, ref.length - 1, min(a.frames, ref.length)).astype(int)
    rows = []
    for t in picks:
        f, l = r.read_clip(ref, int(t), 1, cfg)
        rows.append(boundary_overlay(f, l))
    grid = np.concatenate(rows, axis=1)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(a.out), grid[:, :, ::-1])
    ns = r.nseg(ref, cfg)[picks]
    print(f"{a.out}: {ref.video_id} frames {picks.tolist()} ({cfg}, S = {list(map(int, ns))})")
    return 0


