"""Shared fixtures and helpers: paths to the bundled sample tree and to the reference data
(SHARED: $INSTAFILTERS_SHARED, else ../shared beside the checkout), the bundled sample built
once per session, the CLI runner and its one-line-error check, hostile EXIF bytes."""
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from instafilters.settings import shared_dir

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "instafilters" / "data" / "sample"
SHARED = shared_dir()


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    return SAMPLE


@pytest.fixture(scope="session")
def sample_photo() -> Path:
    return SAMPLE / "val" / "n03877845" / "china.JPEG"


def cli(*args, env=None, timeout=60, cwd=None) -> subprocess.CompletedProcess:
    """`instafilters ARGS` in a fresh interpreter, bounded by timeout; env adds variables to
    os.environ. Output is text (undecodable bytes replaced, as names of any bytes may be)."""
    return subprocess.run([sys.executable, "-m", "instafilters.cli", *map(str, args)],
                          capture_output=True, text=True, errors="replace", timeout=timeout,
                          cwd=cwd, env={**os.environ, **(env or {})})


def one_line_error(result, *fragments) -> str:
    """The CLI's failure contract: exit 1, and one line `Error: ...` holding every fragment."""
    err = result.stderr.strip()
    assert result.returncode == 1, (result.returncode, result.stdout, err)
    assert err.startswith("Error: ") and "Traceback" not in err and len(err.splitlines()) == 1, err
    for fragment in fragments:
        assert str(fragment) in err, err
    return err


@pytest.fixture(scope="session")
def built_sample(tmp_path_factory) -> Path:
    """The bundled sample through all 20 paper filters by the real `instafilters build`
    (default settings: quality 90), once per session: <out>/<filter>/<relpath>."""
    out = tmp_path_factory.mktemp("built-sample")
    proc = cli("build", "--src", SAMPLE, "--out", out, "-j", "1",
               env={"PYTHONWARNINGS": "ignore"}, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def snapshot(root) -> dict:
    """path -> bytes of every file under root (.instafilters included): 'nothing changed'."""
    return {p: p.read_bytes() for p in Path(root).rglob("*") if p.is_file()}


def exif_orientation(tag_type: int, count: int, value4: bytes) -> bytes:
    """A little-endian EXIF block whose only tag is Orientation, stored as given."""
    return b"Exif\0\0" + b"II*\x00" + struct.pack("<IHHHI4sI", 8, 1, 0x112, tag_type, count,
                                                  value4, 0)


# issue 7's repro: the Orientation tag stored as ASCII '6' instead of a SHORT
ASCII_ORIENTATION = exif_orientation(2, 2, b"6\0\0\0")


def write_imagenet_tree(root, splits=("train", "val"), classes=2, per_class=3, size=(96, 72),
                        extras=True) -> list:
    """A tiny ImageNet-like tree of real JPEGs (q90 crops of the bundled photos):
    <split>/<wnid>/<name>.JPEG, plus non-image files as in the real tree. Returns the image
    paths relative to root, sorted."""
    from PIL import Image
    root = Path(root)
    photos = sorted(SAMPLE.glob("val/*/*.JPEG"))
    rels, k = [], 0
    for split in splits:
        for c in range(classes):
            wnid = f"n0{1440764 + c * 1111:07d}"
            for i in range(per_class):
                photo = Image.open(photos[k % len(photos)]).convert("RGB")
                w, h = size if k % 3 else size[::-1]  # some portrait images, as in ImageNet
                left, top = (k * 7) % 40, (k * 5) % 30
                crop = photo.crop((left, top, left + 4 * w, top + 4 * h)).resize((w, h))
                name = (f"{wnid}_{i + 1}.JPEG" if split == "train"
                        else f"ILSVRC2012_val_{k + 1:08d}.JPEG")
                rel = f"{split}/{wnid}/{name}"
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                crop.save(root / rel, "JPEG", quality=90)
                rels.append(rel)
                k += 1
    if extras:
        (root / "LICENSE").write_text("test tree\n")
        (root / "LOC_val_solution.csv").write_text("ImageId,PredictionString\n")
    return sorted(rels)


@pytest.fixture
def imagenet_tree(tmp_path):
    """(root, image paths) of a fresh tiny ImageNet-like tree."""
    root = tmp_path / "imagenet"
    return root, write_imagenet_tree(root)
