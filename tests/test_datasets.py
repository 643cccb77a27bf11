"""instafilters.datasets.InstagramImageNet: the pixels of the files `instafilters build`
writes (real subprocess build), ImageNet-1k labels, layout of the items."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, SAMPLE, cli
from instafilters import io
from instafilters.datasets import InstagramImageNet
from instafilters.errors import InstafiltersError

FILTERS = ("toaster", "inkwell")


def test_items_are_the_pixels_of_the_built_files(built_sample):
    ds = InstagramImageNet(SAMPLE, ",".join(FILTERS))
    n = len(ds.samples)
    assert n == 8 and len(ds) == 16 and ds.filters == FILTERS
    for index in range(len(ds)):
        image, label, filter_index = ds[index]
        path, expected_label = ds.samples[index % n]
        assert filter_index == index // n and label == expected_label
        target = built_sample / FILTERS[filter_index] / path.relative_to(SAMPLE)
        assert np.array_equal(np.asarray(image), io.decode(target).rgb), target


def test_one_filter_gives_pairs_and_labels_are_imagenet_indices():
    ds = InstagramImageNet(SAMPLE, "toaster", jpeg_quality=None)
    image, label = ds[0]
    assert ds.samples[0][0].parent.name == "n02123045" and label == 281  # tabby, not 0
    assert [label for _, label in ds.samples] == ds.targets == [
        281, 652, 657, 665, 698, 872, 967, 985]  # labels.csv; not 0..7 (ImageFolder)
    registry_out = ds.transforms[0].compiled(io.decode(ds.samples[0][0]).rgb)
    assert np.array_equal(np.asarray(image), registry_out)  # raw filter output, no JPEG
    assert ds[-1][1] == 985


def test_png_sources_and_unlabelled_folders_match_the_build(tmp_path):
    src = tmp_path / "src"
    (src / "val" / "holiday").mkdir(parents=True)
    (src / "val" / "n03773504").mkdir(parents=True)
    photo = io.decode(SAMPLE / "val" / "n03773504" / "rocket.JPEG").rgb[:60, :80]
    Image.fromarray(photo).save(src / "val" / "holiday" / "a.png")
    shutil.copy(SAMPLE / "val" / "n03773504" / "rocket.JPEG", src / "val" / "n03773504")
    out = tmp_path / "out"
    proc = cli("build", "--src", src, "--out", out, "-j", "1", "--filters", "lofi",
               "--quality", "75", env={"PYTHONWARNINGS": "ignore"}, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    ds = InstagramImageNet(src, "lofi", jpeg_quality=75, transform=np.asarray)
    assert [p.name for p, _ in ds.samples] == ["a.png", "rocket.JPEG"]
    assert ds.targets == [-1, 657]
    for i, (path, _) in enumerate(ds.samples):
        assert np.array_equal(ds[i][0], io.decode(out / "lofi" / path.relative_to(src)).rgb)


def test_errors(tmp_path):
    with pytest.raises(InstafiltersError, match="no such folder"):
        InstagramImageNet(tmp_path / "nowhere")
    (tmp_path / "val").mkdir()
    with pytest.raises(InstafiltersError, match="no images found"):
        InstagramImageNet(tmp_path)
    with pytest.raises(IndexError):
        InstagramImageNet(SAMPLE, "toaster")[8]


def test_dataloader_workers(built_sample):
    torch = pytest.importorskip("torch")
    from torchvision.transforms.functional import pil_to_tensor
    ds = InstagramImageNet(SAMPLE, "inkwell", transform=lambda im: pil_to_tensor(
        im.resize((32, 32))))
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=1)
    images, labels = next(iter(loader))
    assert images.shape == (4, 3, 32, 32) and labels.tolist() == ds.targets[:4]
    target = built_sample / "inkwell" / ds.samples[0][0].relative_to(SAMPLE)
    first = Image.fromarray(io.decode(target).rgb)
    assert torch.equal(images[0], pil_to_tensor(first.resize((32, 32))))
