"""Pictures: `evaluate davis --video` writes a playable mp4 of ground truth | prediction per sequence (decoded
here with the real ffmpeg) under a band labelling the halves, and a still, which `metrics` never takes for a
prediction; Mp4Writer's even sides, codec fallback and clean failure."""
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from davis_fixtures import truncated
from spixwalk.video import Mp4Writer, ffmpeg_exe
from spixwalk.evaluate.cli import main
from spixwalk.evaluate.davis_io import PALETTE, load_frame, load_mask, mask_overlay, mask_path
from spixwalk.evaluate.side_by_side import STILL, VIDEO, band_height, label_band

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"real DAVIS data not found at {DATA}")


def decode(path) -> tuple[str, np.ndarray]:
    """(codec, frames (T, H, W, 3) uint8) of a video, as ffmpeg reads it."""
    info = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    m = re.search(r"Video: (\w+).*?, (\d+)x(\d+)", info)
    assert m, info
    codec, w, h = m.group(1), int(m.group(2)), int(m.group(3))
    raw = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         capture_output=True, check=True).stdout
    return codec, np.frombuffer(raw, np.uint8).reshape(-1, h, w, 3)


def gradient_frames(n, h, w):
    yy, xx = np.mgrid[:h, :w]
    return [np.stack([(xx * 255 // w + 20 * t) % 256, yy * 255 // h, np.full_like(xx, 128)], -1).astype(np.uint8)
            for t in range(n)]


@pytest.mark.parametrize("codec,name", [("libx264", "h264"), ("mpeg4", "mpeg4")])
def test_mp4_writer_pads_odd_sides_and_decodes(tmp_path, codec, name):
    frames = gradient_frames(6, 45, 31)
    with Mp4Writer(tmp_path / "v.mp4", fps=12, codec=codec) as v:
        for f in frames:
            v.write(f)
    got_codec, got = decode(tmp_path / "v.mp4")
    assert got_codec == name and got.shape == (6, 46, 32, 3)  # yuv420p: one black row and column added
    assert np.abs(got[:, :45, :31].astype(int) - np.stack(frames)).mean() < 6
    assert got[:, 45, :].mean() < 20 and got[:, :, 31].mean() < 20
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]


def test_mp4_writer_failure_leaves_no_file(tmp_path):
    with pytest.raises(KeyError):
        with Mp4Writer(tmp_path / "v.mp4") as v:
            v.write(gradient_frames(1, 16, 16)[0])
            raise KeyError("boom")
    with pytest.raises(ValueError, match="no frames"):
        Mp4Writer(tmp_path / "w.mp4").close()
    assert list(tmp_path.iterdir()) == []


@needs_data
def test_video_is_ground_truth_beside_prediction(tmp_path):
    seq, n = "car-shadow", 9
    root = truncated(DATA / "davis2016-val", seq, n, tmp_path / "davis")
    out = tmp_path / "out"
    assert main(["davis", "--davis", str(root), "--year", "2016", "--sequences", seq, "--features", "rgb",
                 "--out", str(out), "--video", "--video-fps", "12"]) == 0
    codec, video = decode(out / seq / VIDEO)
    band = band_height(480)
    assert codec == "h264" and video.shape == (n, band + 480, 2 * 854, 3)
    video = video[:, band:]
    frames = [load_frame(p) for p in sorted((root / "JPEGImages" / "480p" / seq).glob("*.jpg"))]
    gts = [mask_overlay(f, load_mask(mask_path(root, seq, f"{t:05d}"), 2016)) for t, f in enumerate(frames)]
    preds = [gts[0]] + [np.asarray(Image.open(out / seq / "overlay" / f"{t:05d}.png").convert("RGB"))
                        for t in range(1, n)]
    err = lambda a, b: np.abs(a.astype(int) - b.astype(int)).mean()  # noqa: E731
    for t in range(n):
        left, right = video[t, :, :854], video[t, :, 854:]
        assert err(left, gts[t]) < 3 and err(right, preds[t]) < 3, t
    # where prediction and ground truth disagree, each half shows its own masks, not the other's
    wrong = load_mask(mask_path(root, seq, f"{n - 1:05d}"), 2016) != np.asarray(Image.open(out / seq / f"{n - 1:05d}.png"))
    assert wrong.sum() > 1000
    left, right = video[-1, :, :854][wrong], video[-1, :, 854:][wrong]
    assert err(left, gts[-1][wrong]) < 10 < 25 < err(left, preds[-1][wrong])
    assert err(right, preds[-1][wrong]) < 10 < 25 < err(right, gts[-1][wrong])
    still = np.asarray(Image.open(out / seq / STILL))
    assert np.array_equal(still[band:], np.concatenate([gts[n // 2], preds[n // 2]], axis=1))  # lossless: exact
    assert np.array_equal(still[:band], label_band(480, 854))


def test_label_band_names_each_half():
    band = label_band(480, 854)
    # white text over black, in the left part of each half: "ground truth" is the longer label
    inked = [(band[:, i * 854:(i + 1) * 854].max(axis=-1) > 128).any(axis=0).nonzero()[0] for i in (0, 1)]
    assert all(len(x) > 50 for x in inked) and inked[0].max() < 427 and inked[1].max() < 427
    assert inked[0].max() - inked[0].min() > inked[1].max() - inked[1].min()


@needs_data
def test_objects_take_their_davis_palette_colours(tmp_path):
    out = tmp_path / "out"
    root = DATA / "davis2017-mini"
    assert main(["davis", "--davis", str(root), "--year", "2017", "--sequences", "tennis", "--features", "rgb",
                 "--out", str(out), "--video", "--no-metrics"]) == 0  # 2 frames: nothing to score
    still = np.asarray(Image.open(out / "tennis" / STILL)).astype(int)[band_height(480):]  # frame 1 of 2
    frame = load_frame(root / "JPEGImages" / "480p" / "tennis" / "00001.jpg").astype(int)
    gt = load_mask(mask_path(root, "tennis", "00001"), 2017)
    for k in (1, 2):
        inside = gt == k
        want = (0.5 * frame[inside] + 0.5 * PALETTE[k]).astype(int)
        assert np.abs(still[:, :frame.shape[1]][inside] - want).max() <= 1, k
    assert decode(out / "tennis" / VIDEO)[1].shape[0] == 2
