"""instafilters.transforms: build-identical pixels and bytes (against a real `instafilters
build` subprocess), every input type, torchvision v2 composition, reproducible randomness,
one compile per process, cheap pickles, and no torch at import."""
from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, SAMPLE
from instafilters import io
from instafilters import transforms as T
from instafilters.errors import InstafiltersError, UnknownFilterError

PHOTOS = sorted(SAMPLE.glob("val/*/*.JPEG"))
BUILT = ("toaster", "lofi")


@pytest.mark.parametrize("name", BUILT)
def test_bytes_and_pixels_equal_the_built_files(built_sample, name):
    f = T.InstaFilterCallable(name, jpeg_quality=90)
    for photo in PHOTOS:  # includes camera.JPEG, a grayscale JPEG
        target = built_sample / name / photo.relative_to(SAMPLE)
        assert f.encode(io.decode(photo).rgb) == target.read_bytes(), photo.name
        expected = io.decode(target).rgb
        with Image.open(photo) as im:
            assert np.array_equal(np.asarray(f(im)), expected), photo.name
        assert np.array_equal(f(io.decode(photo).rgb), expected), photo.name


def test_without_jpeg_quality_the_raw_filter_output():
    rgb = io.decode(PHOTOS[0]).rgb
    registry = T.filter_registry()
    out = T.InstaFilterCallable("Lo-Fi", strength=0.5)(rgb)
    assert np.array_equal(out, registry["lofi"](rgb, 0.5))
    assert not np.array_equal(out, rgb)


def test_import_and_use_without_torch():
    code = ("import sys; sys.modules['torch'] = None\n"
            "import numpy as np, instafilters.transforms as T\n"
            "rgb = np.full((8, 8, 3), 120, np.uint8)\n"
            "assert T.InstaFilter is T.InstaFilterCallable\n"
            "r = T.RandomInstaFilter('toaster,gotham', seed=3)\n"
            "print([r.draw()['filter'] for _ in range(4)], T.InstaFilter('gotham')(rgb).shape)\n")
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           cwd=REPO, timeout=60) for _ in range(2)]
    assert runs[0].returncode == 0, runs[0].stderr
    assert runs[0].stdout == runs[1].stdout  # seeded numpy generator: same draws
    assert "(8, 8, 3)" in runs[0].stdout


def test_importing_instafilters_and_transforms_does_not_import_torch():
    code = ("import sys, instafilters, instafilters.transforms\n"
            "assert 'torch' not in sys.modules\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_compiled_once_per_process_and_pickles_are_small():
    a, b = T.InstaFilterCallable("toaster"), T.InstaFilterCallable("Toaster", strength=0.3)
    assert a.compiled is b.compiled
    c = pickle.loads(pickle.dumps(a))
    assert c.compiled is a.compiled
    r = T.RandomInstaFilterCallable("all")
    assert len(pickle.dumps(r)) < 2000  # names and numbers, no tables
    assert pickle.loads(pickle.dumps(r)).filters == r.filters


def test_filters_take_sets_aliases_lists_and_recipes_files(tmp_path):
    assert len(T.RandomInstaFilterCallable("paper").filters) == 20
    assert T.RandomInstaFilterCallable(["Lo-Fi", "toaster", "lofi"]).filters == ("lofi",
                                                                               "toaster")
    assert T.RandomInstaFilterCallable({"gotham", "toaster"}).filters == ("gotham", "toaster")
    recipes = tmp_path / "mine.yaml"
    recipes.write_text("filters:\n- name: darker\n  description: half as bright\n  ops:\n"
                       "  - op: brightness\n    amount: 0.5\n")
    r = T.RandomInstaFilterCallable(recipes, strength=1.0)
    assert r.filters == ("darker",)
    rgb = np.full((4, 4, 3), 200, np.uint8)
    assert r(rgb).max() < 200
    f = T.InstaFilterCallable("darker", recipes=recipes)
    assert np.array_equal(f(rgb), r(rgb))
    with pytest.raises(UnknownFilterError, match="unknown filter 'nope'"):
        T.InstaFilterCallable("nope")
    with pytest.raises(InstafiltersError, match="strength"):
        T.RandomInstaFilterCallable("paper", strength=(0.8, 0.2))
    with pytest.raises(InstafiltersError, match="jpeg_quality"):
        T.InstaFilterCallable("toaster", jpeg_quality=0)


def test_p_and_strength_range():
    rgb = io.decode(PHOTOS[1]).rgb
    assert T.RandomInstaFilterCallable("paper", p=0.0)(rgb) is rgb
    r = T.RandomInstaFilterCallable("paper", strength=(0.25, 0.5))
    draws = [r.draw() for _ in range(200)]
    assert all(0.25 <= d["strength"] <= 0.5 for d in draws)
    assert len({d["filter"] for d in draws}) == 20


# -- with torch ------------------------------------------------------------------------------

# fixtures, not module-level importorskips: those would skip the torch-free tests above too

@pytest.fixture
def torch():
    return pytest.importorskip("torch")


@pytest.fixture
def v2(torch):
    return pytest.importorskip("torchvision.transforms.v2")


def test_tensor_in_tensor_out_and_v2_leaves_labels_boxes_masks(torch, v2):
    from torchvision import tv_tensors
    f = T.InstaFilter("toaster", jpeg_quality=90)
    assert isinstance(f, v2.Transform)
    rgb = io.decode(PHOTOS[0]).rgb
    expected = T.InstaFilterCallable("toaster", jpeg_quality=90)(rgb)
    chw = torch.from_numpy(rgb.copy()).permute(2, 0, 1)
    out = f(chw)
    assert type(out) is torch.Tensor and out.dtype == torch.uint8
    assert np.array_equal(out.permute(1, 2, 0).numpy(), expected)
    assert np.array_equal(f(rgb), expected)
    assert np.array_equal(np.asarray(f(Image.fromarray(rgb))), expected)
    boxes = tv_tensors.BoundingBoxes([[1, 2, 30, 40]], format="XYXY", canvas_size=rgb.shape[:2])
    mask = tv_tensors.Mask(torch.ones(rgb.shape[:2], dtype=torch.uint8))
    sample = {"image": tv_tensors.Image(chw), "boxes": boxes, "mask": mask, "label": 7}
    got = v2.Compose([f, v2.ToDtype(torch.float32, scale=True)])(sample)
    assert isinstance(got["image"], tv_tensors.Image)
    assert torch.equal(got["boxes"], boxes) and torch.equal(got["mask"], mask)
    assert got["label"] == 7


def test_random_draws_follow_torch_seed_and_worker_seeding(torch):
    r = T.RandomInstaFilter("paper", strength=(0.5, 1.0))
    rgb = io.decode(PHOTOS[2]).rgb[:64, :64].copy()

    def run():
        torch.manual_seed(1234)
        return [r(rgb) for _ in range(5)]
    a, b = run(), run()
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(a[0], x) for x in a[1:])

    class Images(torch.utils.data.Dataset):
        def __len__(self):
            return 6

        def __getitem__(self, i):
            return torch.from_numpy(r(rgb)).permute(2, 0, 1)

    def loader_run():
        torch.manual_seed(7)
        loader = torch.utils.data.DataLoader(Images(), batch_size=2, num_workers=2)
        return torch.cat(list(loader))
    assert torch.equal(loader_run(), loader_run())
