"""`make device-kit`: the device command's composition and the kit's size limit (benchmarks/device_kit.py)."""
import json
from pathlib import Path

import pytest

from benchmarks import device_kit

REPO = Path(__file__).resolve().parents[1]
DAVIS = REPO.parent / "shared" / "data" / "davis2016-val"


def test_the_device_command_installs_offline_into_a_target_and_runs_the_images_python():
    cmd = device_kit.device_command("device-kit")
    install, run = cmd.split(" && ")
    assert install.startswith("python3 -m pip install ")
    for flag in ("--no-index", "--no-deps", f"--target {device_kit.SITE}", "device-kit/wheels/*.whl"):
        assert flag in install
    assert "venv" not in cmd and ".venv" not in cmd  # the image's python3, no virtual environment
    assert f"PYTHONPATH={device_kit.SITE}:$PWD" in run and "python3 -m benchmarks.gpu --kit device-kit" in run
    assert '--out-dir "${OUT:-bench-results/device}"' in run  # every figure lands in the device's $OUT
    assert "../shared" not in cmd


@pytest.mark.skipif(not DAVIS.is_dir(), reason=f"{DAVIS} absent (the DAVIS-2016 val set in ../shared/data)")
def test_davis_sequences_are_kept_whole_within_the_room_left(tmp_path):
    kept = device_kit.copy_davis(DAVIS, tmp_path / "davis", quality=60, room_mib=3.0)
    assert kept and device_kit.size_mib(tmp_path / "davis") <= 3.0
    listed = (tmp_path / "davis" / "ImageSets" / "2016" / "val.txt").read_text().split()
    assert listed == kept
    for s in kept:  # every frame of a kept sequence, with its annotations
        src = sorted(p.name for p in (DAVIS / "JPEGImages" / "480p" / s).glob("*.jpg"))
        assert sorted(p.name for p in (tmp_path / "davis" / "JPEGImages" / "480p" / s).glob("*.jpg")) == src
        assert (tmp_path / "davis" / "Annotations" / "480p" / s / "00000.png").is_file()


@pytest.mark.skipif(not (REPO / "device-kit" / "KIT.json").is_file(), reason="no device-kit/ (make device-kit)")
def test_a_built_kit_is_within_60_mib_and_holds_its_command():
    kit = REPO / "device-kit"
    assert device_kit.size_mib(kit) <= device_kit.LIMIT_MIB
    meta = json.loads((kit / "KIT.json").read_text())
    assert (kit / "command.txt").read_text().strip() == meta["command"] == device_kit.device_command("device-kit")
    assert not any("imagecodecs" in w for w in meta["wheels"]) and any(w.startswith("zarr-") for w in meta["wheels"])
