"""A wheel built from a clean copy of the tree (what git tracks or would track) holds the declared packages'
modules and nothing else, and the LICENSE. (setuptools copies whatever a stale build/lib holds into the next
wheel, deleted modules included: hence build/ in .gitignore and a clean tree here.)"""
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def clean_copy(dst: Path) -> Path:
    """The files git tracks or would track (not ignored), as they are now: no build/, no caches."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout: no clean tree to copy")
    for rel in filter(None, listed.stdout.decode().split("\0")):
        if (REPO / rel).is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, dst / rel)
    return dst


def declared_modules() -> set[str]:
    """spixwalk/preprocess/run.py ... : every .py of every declared package's folder, as the wheel names it."""
    tool = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    dirs = tool["package-dir"]
    found = set()
    for pkg in tool["packages"]:
        src = REPO / dirs.get(pkg, pkg.replace(".", "/"))
        found |= {f"{pkg.replace('.', '/')}/{p.name}" for p in src.glob("*.py")}
    return found


def test_wheel_holds_only_the_declared_modules_and_the_licence(tmp_path):
    src = clean_copy(tmp_path / "src")  # build/ is ignored: a stale build/lib (setuptools reuses it) stays out
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                        "-q", "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True)
    if r.returncode != 0 and "No module named" in r.stderr:
        pytest.skip(f"cannot build a wheel offline here: {r.stderr.strip().splitlines()[-1]}")
    assert r.returncode == 0, r.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("spixwalk-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    modules = {n for n in names if n.endswith(".py")}
    assert modules == declared_modules(), (sorted(modules - declared_modules()), sorted(declared_modules() - modules))
    assert any(n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE") for n in names), names
