"""The README's quick start, run line by line as written: only the paths (my_videos/, work/, path/to/DAVIS) are
replaced by a test folder, and the training line gets a tiny crop and two steps so the suite stays fast."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

from davis_fixtures import truncated
from preprocess_fixtures import lavfi_videos

REPO = Path(__file__).resolve().parents[1]
DAVIS16 = REPO.parent / "shared" / "data" / "davis2016-val"


def quickstart_lines() -> list[str]:
    text = (REPO / "README.md").read_text()
    block = text.split("## Quick start on your own videos", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    return [re.sub(r"\s+#.*$", "", line).strip() for line in block.strip().splitlines() if line.strip()]


@pytest.mark.skipif(not DAVIS16.is_dir(), reason="needs ../shared/data/davis2016-val")
def test_readme_quick_start_runs_as_written(tmp_path):
    videos = tmp_path / "my_videos"
    lavfi_videos(videos, 2, seconds=2.0)
    davis = truncated(DAVIS16, "dog", 3, tmp_path / "DAVIS")
    (davis / "ImageSets" / "2016").mkdir(parents=True)
    (davis / "ImageSets" / "2016" / "val.txt").write_text("dog\n")
    lines = quickstart_lines()
    assert [line.split()[1] for line in lines] == ["manifest", "preprocess", "train", "eval", "report"]
    for line in lines:
        line = line.replace("my_videos/", f"{videos}/").replace("path/to/DAVIS", str(davis))
        line = re.sub(r"(?<![\w/])work/", f"{tmp_path}/work/", line)
        line = re.sub(r"--steps \d+", "--steps 2 --img-size 64 --workers 0", line)
        args = [sys.executable, "-m", "spixwalk", *line.split()[1:]]
        r = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True)
        assert r.returncode == 0, (line, r.stderr[-2000:])
    assert (tmp_path / "work" / "eval" / "sp" / "global_results-val.csv").is_file()
    assert "J&F" in r.stdout or (tmp_path / "work" / "report" / "report.md").is_file()
