"""Shared fixtures: paths to the bundled sample tree and to the reference data (SHARED:
$INSTAFILTERS_SHARED, else ../shared beside the checkout)."""
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
