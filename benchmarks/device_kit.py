"""`make device-kit`: everything a GPU run on a bare, offline node needs, in one folder (at most 60 MiB).

    python -m benchmarks.device_kit [--out device-kit] [--python-version 3.12]

Run on a developer machine with the registry. Writes into --out:
  wheels/   the manylinux x86_64 wheels of what such a node's image lacks (zarr and what it needs; no imagecodecs:
            the store's JPEG frames decode with OpenCV there, preprocess/jpegcodec.py)
  store/    a store built by the project's own stages (data_manifest, preprocess) from --train-videos, SLIC-30
  davis/    DAVIS-2016 val sequences for scoring, JPEGs re-encoded at --jpeg-quality, as many whole sequences
            (ImageSets order) as the size limit leaves room for; ImageSets/2016/val.txt lists those
  KIT.json  what is in it; command.txt the one-line device command (printed at the end)
On the node the command installs the wheels with pip --no-index --no-deps --target, runs the image's python3
and writes every figure into $OUT (benchmarks/gpu.py --kit). `--wheels-only` fetches wheels alone (the rehearsal's,
for the local Python).
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
LIMIT_MIB = 60
# what the node image lacks for the store reader (KINDS.md lists the image); pinned to this checkout's versions
WHEELS = ("zarr==3.1.6", "numcodecs==0.16.6", "donfig==0.8.1.post1", "google-crc32c==1.9.0", "pyyaml==6.0.4")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
SITE = "/tmp/spixwalk-site"


def device_command(kit: str = "device-kit", python: str = "python3") -> str:
    """The one line run on the node from the repository root: install the kit's wheels, then every part."""
    return (f"{python} -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target {SITE} "
            f"{kit}/wheels/*.whl && PYTHONPATH={SITE}:$PWD PYTHONUNBUFFERED=1 {python} -m benchmarks.gpu "
            f"--kit {kit} --out-dir \"${{OUT:-bench-results/device}}\"")


def size_mib(path: Path) -> float:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file()) / 2**20


def fetch_wheels(dest: Path, python_version: str) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version",
           python_version, "--implementation", "cp", *[x for p in PLATFORMS for x in ("--platform", p)],
           "-d", str(dest), *WHEELS]
    subprocess.run(cmd, check=True)


def build_store(videos: Path, store: Path, jobs: int) -> None:
    """data_manifest + preprocess, as `make superpixels` runs them (SLIC n=30, compactness 30)."""
    manifest = store.parent / "manifest.jsonl"
    run = lambda *args: subprocess.run([sys.executable, "-m", *args], cwd=REPO, check=True)  # noqa: E731
    run("data_manifest", "build", "--videos", str(videos), "--shard-size", "8", "--out", str(manifest))
    run("preprocess", "--manifest", str(manifest), "--store", str(store), "--alg", "slic", "--n-segments", "30",
        "--compactness", "30", "--jobs", str(jobs))
    for p in (manifest, manifest.with_suffix(".config.json")):
        p.unlink(missing_ok=True)
    for p in store.glob("*.lease"):
        p.unlink()


def copy_davis(src: Path, dest: Path, quality: int, room_mib: float) -> list[str]:
    """Whole sequences in ImageSets order, re-encoded, while they fit in room_mib; returns their names."""
    import cv2

    seqs = (src / "ImageSets" / "2016" / "val.txt").read_text().split()
    kept, used = [], 0.0
    for s in seqs:
        tmp = dest / ".next"
        shutil.rmtree(tmp, ignore_errors=True)
        (tmp / "img").mkdir(parents=True)
        for jpg in sorted((src / "JPEGImages" / "480p" / s).glob("*.jpg")):
            cv2.imwrite(str(tmp / "img" / jpg.name), cv2.imread(str(jpg)), [cv2.IMWRITE_JPEG_QUALITY, quality])
        shutil.copytree(src / "Annotations" / "480p" / s, tmp / "ann")
        add = size_mib(tmp)
        if used + add > room_mib:
            shutil.rmtree(tmp)
            continue  # a smaller sequence further down may still fit
        (tmp / "img").rename(_mk(dest / "JPEGImages" / "480p") / s)
        (tmp / "ann").rename(_mk(dest / "Annotations" / "480p") / s)
        shutil.rmtree(tmp)
        kept.append(s)
        used += add
    _mk(dest / "ImageSets" / "2016").joinpath("val.txt").write_text("\n".join(kept) + "\n")
    return kept


def _mk(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.device_kit", description=__doc__.split("\n")[0])
    p.add_argument("--out", default="device-kit", help="the kit folder (replaced)")
    p.add_argument("--python-version", default="3.12", help="the node's Python, for the wheels' tags")
    p.add_argument("--train-videos", default=str(DATA / "davis2016-train" / "videos"))
    p.add_argument("--davis", default=str(DATA / "davis2016-val"))
    p.add_argument("--jpeg-quality", type=int, default=75, help="DAVIS JPEGs re-encoded at this quality")
    p.add_argument("--limit-mib", type=float, default=LIMIT_MIB)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--wheels-only", action="store_true", help="fetch the wheels into --out/wheels, nothing else")
    return p.parse_args(argv)


def main(argv=None) -> int:
    a = parse_args(argv)
    out = Path(a.out)
    for name, path in (("--train-videos", a.train_videos), ("--davis", a.davis)):
        if not a.wheels_only and not Path(path).is_dir():
            print(f"device-kit: {name} {path}: no such folder", file=sys.stderr)
            return 2
    if a.wheels_only:
        shutil.rmtree(out / "wheels", ignore_errors=True)
        fetch_wheels(out / "wheels", a.python_version)
        return 0
    shutil.rmtree(out, ignore_errors=True)
    fetch_wheels(out / "wheels", a.python_version)
    build_store(Path(a.train_videos).resolve(), (out / "store").resolve(), a.jobs)
    room = a.limit_mib - size_mib(out) - 0.5  # 0.5 MiB for KIT.json, command.txt and file-system slack
    seqs = copy_davis(Path(a.davis), out / "davis", a.jpeg_quality, room)
    if not seqs:
        print(f"device-kit: no DAVIS sequence fits in the {room:.1f} MiB left", file=sys.stderr)
        return 1
    all_seqs = (Path(a.davis) / "ImageSets" / "2016" / "val.txt").read_text().split()
    cmd = device_command(out.name)
    kit = {"wheels": sorted(p.name for p in (out / "wheels").glob("*.whl")), "python": a.python_version,
           "store_from": str(a.train_videos), "label_config": "slic-n30-c30", "davis_sequences": seqs,
           "davis_left_out": [s for s in all_seqs if s not in seqs], "davis_jpeg_quality": a.jpeg_quality,
           "mib": {d: round(size_mib(out / d), 2) for d in ("wheels", "store", "davis")}, "command": cmd}
    (out / "KIT.json").write_text(json.dumps(kit, indent=1))
    (out / "command.txt").write_text(cmd + "\n")
    total = size_mib(out)
    if total > a.limit_mib:
        print(f"device-kit: {out} is {total:.1f} MiB, over {a.limit_mib:g}", file=sys.stderr)
        return 1
    print(f"device-kit: {out} {total:.1f} MiB (wheels {kit['mib']['wheels']}, store {kit['mib']['store']}, "
          f"DAVIS {len(seqs)}/{len(all_seqs)} sequences at JPEG q{a.jpeg_quality} {kit['mib']['davis']})")
    print(cmd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
