"""One task per manifest shard: decode frames (where missing), label maps, markers last."""
from __future__ import annotations

import json
import time
from pathlib import Path

from spixwalk.files import write_atomic

from . import generations, store
from .decode import DecodeError, decode
from .lease import Busy, Lease
from .spconfig import FRAME_RATE, FRAME_SIZE
from .superpixels import label_video


def select_shards(all_shards: list[int], shard=None, shard_index=None, num_shards=None,
                  shards_per_task=None) -> list[int]:
    """--shard K[,K2,..]; the i-th of n contiguous ranges; or task i of fixed ranges of k shards.

    Fixed ranges (shards_per_task) survive a partial resubmission of a SLURM array: task i always
    covers positions i*k .. i*k+k-1 of the manifest's shards, whichever tasks run. Past the end: [].
    """
    if shard is not None:
        wanted = [int(s) for s in str(shard).split(",") if s.strip() != ""]
        missing = sorted(set(wanted) - set(all_shards))
        if missing:
            raise ValueError(f"--shard {shard}: shard(s) {missing} not in the manifest (it has {all_shards[0]}..{all_shards[-1]})")
        return wanted
    if shards_per_task is not None:
        if shards_per_task < 1 or shard_index is None or shard_index < 0:
            raise ValueError("--shards-per-task needs k >= 1 and --shard-index i >= 0")
        return all_shards[shard_index * shards_per_task:(shard_index + 1) * shards_per_task]
    if num_shards is not None:
        if not 0 <= shard_index < num_shards:
            raise ValueError(f"--shard-index must be in 0..{num_shards - 1}, got {shard_index}")
        return [s for k, s in enumerate(all_shards) if k * num_shards // len(all_shards) == shard_index]
    return list(all_shards)


def _log(msg: str) -> None:
    print(msg, flush=True)


class LeaseLost(Exception):
    """Another task took this shard over (we were presumed dead): stop without writing a marker."""


class _Guard:
    """Called between videos: raises LeaseLost once the shard's lease is lost. `video(event)` reports a
    video "decoded" or "done" (labelled or failed) to the run's VideoProgress queue, where there is one."""

    def __init__(self, lease: Lease, shard: int, queue=None):
        self.lease, self.shard, self.queue = lease, shard, queue

    def __call__(self) -> None:
        if not self.lease.held():
            raise LeaseLost(f"lease lost to {self.lease.taken_by()}")

    def video(self, event: str) -> None:
        if self.queue is not None:
            self.queue.put((self.shard, event))


def process_shard(root, shard: int, rows: list[dict], alg: str, params: dict, cfg: str,
                  fps: float = FRAME_RATE, size: int = FRAME_SIZE, quality: int = 90, timeout: float = 600.0,
                  force: bool = False, retry_failed: bool = False, redecode: bool = False, progress=None) -> dict:
    """Bring one shard to complete frames + labels[cfg] under its lease. Never raises on bad input.

    force redoes labels[cfg] only; redecode redoes the frames (and so drops every label map);
    retry_failed re-attempts only the videos recorded as failed. A shard held by a live task is
    left alone and reported as busy. progress: VideoProgress's queue (None: no per-video events).
    """
    import cv2

    cv2.setNumThreads(1)  # one core per task: parallelism comes from running tasks side by side
    t0 = time.perf_counter()
    stats = {"shard": shard, "frames": 0, "decoded": False, "labelled": False, "failed": [], "busy": None,
             "nseg_min": None, "nseg_max": None, "decode_s": 0.0, "label_s": 0.0, "seconds": 0.0}
    try:
        with Lease(root, shard) as lease:
            store.remove_leftovers(store.shard_path(root, shard))
            guard = _Guard(lease, shard, progress)
            try:
                sp = store.shard_path(root, shard)
                guard()
                generations.prune(sp)  # what earlier attempts left: superseded, dead-lineage or dead-writer generations
                fm = _frames_step(root, shard, rows, stats, guard, fps, size, quality, timeout, retry_failed, redecode)
                lm = _labels_step(root, shard, alg, params, cfg, stats, guard, force, retry_failed)
                generations.prune(sp)
                guard()  # a commit made after the claim was lost may be outranked: do not report it as done
            except OSError as e:
                if lease.held():
                    raise
                raise LeaseLost(f"lease lost to {lease.taken_by()} (then {type(e).__name__}: {e})") from e
    except (Busy, LeaseLost) as e:
        stats["busy"] = str(e)
        _log(f"BUSY shard {shard}: {e}; left alone")
        return stats
    except OSError as e:  # disk full, quota, I/O error: this shard stays incomplete, the others go on
        reason = f"{type(e).__name__}: {e.strerror or e}" + (f" ({e.filename})" if e.filename else "")
        stats["failed"] = [{"id": f"shard {shard}", "path": str(store.shard_path(root, shard)), "stage": "write",
                            "reason": reason}]
        _log(f"FAILED shard {shard}: writing the store: {reason}; shard left incomplete")
        return stats
    stats["failed"] = fm["failed"] + lm["failed"]
    stats["frames"], stats["nseg_min"], stats["nseg_max"] = lm["frames"], lm["nseg_min"], lm["nseg_max"]
    stats["seconds"] = time.perf_counter() - t0
    return stats


def _decode_into(w: store.FramesWriter, rows, fps, size, timeout, guard) -> list[dict]:
    """Decode and append one video at a time (memory: one video). Returns the failures."""
    failed = []
    for row in rows:
        try:
            arr = decode(row["path"], fps, size, timeout, src_fps=row.get("fps"))
        except DecodeError as e:
            failed.append({"id": row["id"], "path": row["path"], "stage": "decode", "reason": str(e)})
            _log(f"FAILED {row['path']}: {e}")
            guard.video("done")
            continue
        guard()
        w.add(row["id"], arr, row["path"])
        del arr
        guard.video("decoded")
    return failed


def _frames_step(root, shard, rows, stats, guard, fps, size, quality, timeout, retry_failed, redecode) -> dict:
    sp = store.shard_path(root, shard)
    fg = generations.frames_gen(sp)
    fm = fg[1] if fg else None
    retry = {f["id"] for f in fm["failed"]} if fm is not None and retry_failed else set()
    if fm is not None and not redecode and not retry:
        return fm
    td = time.perf_counter()
    guard()
    gen = generations.new_frames_gen(sp)
    guard()  # from here on every later holder sees this generation and numbers its own above it
    if fm is None or redecode:
        w = store.FramesWriter(gen, shard, size, fps, quality)
        failed = _decode_into(w, rows, fps, size, timeout, guard)
    else:  # append the videos that decode now to a copy; the committed frames stay readable meanwhile
        w = store.FramesWriter(gen, shard, size, fps, quality, base=fg)
        failed = [f for f in fm["failed"] if f["id"] not in retry]
        failed += _decode_into(w, [r for r in rows if r["id"] in retry], fps, size, timeout, guard)
    guard()
    m = w.finish(failed)
    stats["decoded"] = True
    stats["decode_s"] = time.perf_counter() - td
    return m


def _labels_step(root, shard, alg, params, cfg, stats, guard, force, retry_failed) -> dict:
    sp = store.shard_path(root, shard)
    fg = generations.frames_gen(sp)
    lg = generations.labels_gen(sp, cfg, fg)
    lm = lg[1] if lg else None
    covered = lm is not None and set(fg[1]["ok"]) <= set(lm["ok"]) | {f["id"] for f in lm["failed"]}
    if covered and not stats["decoded"] and not force and not (retry_failed and lm["failed"]):
        return lm
    tl = time.perf_counter()
    guard()
    gen = generations.new_labels_gen(sp, cfg)
    guard()
    keep = lg if not (stats["decoded"] or force) else None
    w = store.LabelsWriter(gen, fg, cfg, {"alg": alg, "params": params}, base=keep)
    for v in w.todo(retry_failed):
        # labels are computed on the stored (JPEG) frames: exactly what the trainer reads
        clip = w.frames[v["start"]:v["start"] + v["length"]]
        try:
            lab, ns = label_video(clip, alg, params, seed_key=v["id"])
        except Exception as e:  # a library error on one video must not sink the shard
            w.put(v, None, None, {"id": v["id"], "path": v.get("path"), "stage": "labels",
                                  "reason": f"{type(e).__name__}: {e}"})
            _log(f"FAILED {v.get('path') or v['id']}: {alg} labels: {e}")
            guard.video("done")
            continue
        guard()
        w.put(v, lab, ns)
        guard.video("done")
    guard()
    stats["labelled"] = True
    stats["label_s"] = time.perf_counter() - tl
    return w.finish()


def write_run_config(root, cfg: str, config: dict) -> Path:
    path = Path(root) / f"config-{cfg}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(path, json.dumps(config, indent=1, sort_keys=True))  # tasks on several hosts write it


class VideoProgress:
    """Videos of a run done (labelled, failed, or kept from an earlier run) on a Progress bar: per video from
    the tasks' events (`queue`, for tasks on this host: loky) and per shard from each finished task's stats."""

    def __init__(self, shard_videos: dict[int, int], desc: str, events: bool):
        import multiprocessing
        import threading

        from spixwalk.progress import Progress

        self.total, self.done, self.decoded = dict(shard_videos), dict.fromkeys(shard_videos, 0), 0
        self.bar = Progress(sum(self.total.values()), desc, unit="video")
        self.lock, self.manager, self.queue, self.thread = threading.Lock(), None, None, None
        if events:
            self.manager = multiprocessing.Manager()
            self.queue = self.manager.Queue()
            self.thread = threading.Thread(target=self._drain, daemon=True)
            self.thread.start()

    def _drain(self) -> None:
        while (event := self.queue.get()) is not None:
            shard, kind = event
            with self.lock:
                if kind == "decoded":
                    self.decoded += 1
                    self.bar.note(decoded=self.decoded)
                # events may trail their task's result: never past the shard's videos
                self.done[shard] = min(self.done[shard] + (kind == "done"), self.total[shard])
                self.bar.set(sum(self.done.values()))

    def finished(self, stats: dict) -> None:
        with self.lock:
            self.done[stats["shard"]] = self.total[stats["shard"]]
            self.bar.set(sum(self.done.values()))

    def close(self) -> None:
        if self.thread is not None:
            self.queue.put(None)
            self.thread.join()
            self.manager.shutdown()
        self.bar.close()
