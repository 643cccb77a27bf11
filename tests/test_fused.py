"""The one-table tail (fused.ToneTable): same result from every backend, close to the
step-by-step form and to the float reference on real photos, and nothing at import time."""
import importlib
import subprocess
import sys

import cv2
import numpy as np
import pytest
from PIL import Image

import instafilters
from instafilters import fused
from instafilters.cvutil import HAS_16BIT_LUT, numba_kernels
from instafilters.recipe import parse_filter
from instafilters.steps import Lut

compile_module = importlib.import_module("instafilters.compile")
REGISTRY = instafilters.load_filters()
FUSED = [n for n in REGISTRY.names("all")
         if isinstance(REGISTRY[n].steps[-1], fused.ToneTable)]


@pytest.fixture(scope="module")
def photos(sample_dir):
    """Real photos at ImageNet's common size and at an odd one."""
    paths = sorted(sample_dir.glob("val/*/*.JPEG"))[:3]
    return [np.asarray(Image.open(p).convert("RGB").resize(size, Image.BICUBIC))
            for p, size in zip(paths, [(500, 375), (375, 500), (123, 77)])]


def test_the_paper_vignette_filters_are_fused():
    assert {"amaro", "hudson", "toaster", "earlybird"} <= set(FUSED)
    assert REGISTRY["amaro"].steps[-1].row_count > 256  # two vignettes in one table


def backends(table):
    found = ["numpy"]
    if HAS_16BIT_LUT and table.row_count <= 256:
        found.append("cv2")
    if numba_kernels() is not None:
        found.append("numba")
    return found


@pytest.mark.parametrize("name", FUSED)
def test_every_backend_gives_identical_pixels(name, photos):
    compiled = REGISTRY[name]
    table = compiled.steps[-1]
    for img in photos:
        head = compile_module.run(compiled.steps[:-1], img, np.empty_like(img))
        results = {b: table(head, np.empty_like(img), backend=b) for b in backends(table)}
        for b, out in results.items():
            assert np.array_equal(out, results["numpy"]), f"{name}: {b} differs from numpy"
    assert len(results) >= 2 or numba_kernels() is None


@pytest.mark.parametrize("name", FUSED)
def test_fused_matches_step_by_step_and_reference_on_photos(name, photos, monkeypatch):
    recipe = REGISTRY[name].recipe
    monkeypatch.setattr(compile_module, "split_tail", lambda ops: None)
    steps = compile_module.CompiledFilter(recipe)
    assert not any(isinstance(s, fused.ToneTable) for s in steps.steps)
    for img in photos:
        fast = REGISTRY[name](img).astype(np.float64)
        reference = recipe.evaluate(img / 255.0) * 255.0
        for other, bound in ((steps(img), (2.0, 0.5)), (reference, (2.0, 0.5))):
            err = np.abs(fast - other)
            assert err.max() <= bound[0] and err.mean() <= bound[1], \
                f"{name}: max {err.max():.2f}, mean {err.mean():.3f}"


def make(ops):
    return compile_module.CompiledFilter(
        parse_filter({"name": "t", "description": "test", "ops": ops}, file="test", index=0))


def test_vignettes_with_different_centres_are_not_fused():
    curves = {"rgb": [[0, 0], [128, 90], [255, 230]]}
    f = make([{"op": "vignette", "curves": curves},
              {"op": "vignette", "curves": curves, "center": [0.3, 0.6]}])
    assert not any(isinstance(s, fused.ToneTable) for s in f.steps)


def test_a_plain_darkening_vignette_keeps_its_cheaper_gain_form():
    f = make([{"op": "curves", "rgb": [[0, 10], [255, 250]]},
              {"op": "vignette", "color": [0, 0, 0]}])
    assert type(f.steps[-1]).__name__ == "GainVignette"


def test_rows_are_cached_per_size():
    table = REGISTRY["amaro"].steps[-1]
    img = np.zeros((31, 45, 3), np.uint8)
    before = table.rows.cache_info()
    table(img, np.empty_like(img))
    table(img, np.empty_like(img))
    after = table.rows.cache_info()
    assert after.misses - before.misses <= 1 and after.hits > before.hits


def test_import_and_list_never_load_numba():
    code = ("import sys, instafilters; instafilters.load_filters(); "
            "assert 'numba' not in sys.modules, 'numba imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_numba_lut_equals_opencv(dtype, photos):
    """steps.Lut runs numba's gather when numba is there (2-3x faster than cv2.LUT with a
    per-channel table), cv2.LUT otherwise: the same pixels."""
    if numba_kernels() is None:
        pytest.skip("numba not installed")
    info = np.iinfo(dtype)
    table = np.random.default_rng(5).integers(0, info.max + 1, (256, 1, 3), dtype=dtype)
    lut = Lut(table)
    for img in photos:
        ours = lut(img, np.empty(img.shape, dtype))
        assert np.array_equal(ours, cv2.LUT(img, table))
