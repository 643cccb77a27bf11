"""The wheel `pip install instafilters` gives users: an editable install (what the tests use)
reads files from the checkout, so a data file missing from the wheel would pass every other
test. Built for real with pip, offline (no build isolation: setuptools is installed here),
from a copy of the checkout: setuptools builds in place (build/lib), which would leave files
in the repository and pack stale ones."""
import shutil
import subprocess
import sys
import zipfile

import pytest

from conftest import REPO


@pytest.mark.slow
def test_wheel_carries_the_recipes_the_sample_and_the_wnid_list(tmp_path):
    source = tmp_path / "src"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
        "bench-out"))
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(source)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "would be ignored" not in result.stdout + result.stderr  # setuptools' discovery
    wheel, = tmp_path.glob("instafilters-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in ("instafilters/filters.yaml", "instafilters/data/imagenet_wnids.txt",
                     "instafilters/data/sample/labels.csv", "instafilters/_kernel.py",
                     "instafilters/dataset/worker.py", "instafilters/evaluate/runner.py",
                     "instafilters/fit/solver.py"):
        assert expected in names, expected
    samples = [n for n in names if n.startswith("instafilters/data/sample/val/")
               and n.endswith(".JPEG")]
    bundled = list((REPO / "instafilters" / "data" / "sample" / "val").glob("*/*.JPEG"))
    assert len(samples) == len(bundled) > 0
    assert not any(n.startswith("tests/") or "__pycache__" in n for n in names)
