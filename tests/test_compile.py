"""The fused pipeline matches the op-by-op float evaluation for every bundled filter."""
import numpy as np
import pytest

import instafilters
from instafilters.compile import (HAS_16BIT_LUT, ColourVignette, CompiledFilter,
                                  FloatFallback, GainVignette, GradientBlend, Lut, LutMatrix,
                                  MaskBlend, MaskLut, Matrix, _FunctionTone, compile_point_ops)
from instafilters.fused import ToneTable
from instafilters.recipe import parse_filter

REGISTRY = instafilters.load_filters()


def random_image(seed, shape=(97, 131, 3)):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def make(ops, name="t"):
    return CompiledFilter(parse_filter({"name": name, "description": "test", "ops": ops},
                                       file="test", index=0))


@pytest.mark.parametrize("name", REGISTRY.names("all"))
def test_fused_matches_direct_float_evaluation(name):
    compiled = REGISTRY[name]
    for seed in range(3):
        img = random_image(seed)
        fused = compiled(img).astype(np.float64)
        direct = compiled.recipe.evaluate(img / 255.0) * 255.0
        err = np.abs(fused - direct)
        assert err.max() <= 2.0, f"{name}: worst {err.max():.2f} grey levels"
        assert err.mean() <= 0.5, f"{name}: mean {err.mean():.3f} grey levels"


@pytest.mark.parametrize("name", REGISTRY.names("all"))
def test_output_shape_dtype_and_determinism(name):
    img = random_image(7, (64, 48, 3))
    out = REGISTRY[name](img)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert np.array_equal(out, REGISTRY[name](img.copy()))


def test_tone_ops_fuse_into_one_lut_and_matrices_into_one():
    f = make([{"op": "curves", "r": [[0, 20], [255, 240]]}, {"op": "contrast", "amount": 1.2},
              {"op": "brightness", "amount": 0.9},
              {"op": "saturation", "amount": 1.3}, {"op": "hue_rotate", "degrees": 20},
              {"op": "sepia", "amount": 0.3}])
    assert [type(s) for s in f.steps] == [Lut, Matrix]  # 8-bit is accurate enough here


def test_a_matrix_that_amplifies_rounding_gets_the_16_bit_form():
    f = make([{"op": "curves", "rgb": [[0, 0], [128, 100], [255, 255]]},
              {"op": "saturation", "amount": 4.0}, {"op": "hue_rotate", "degrees": 40}])
    assert [type(s) for s in f.steps] == [LutMatrix]
    img = random_image(8)
    err = np.abs(f(img) - f.recipe.evaluate(img / 255.0) * 255.0)
    assert err.max() <= 2.0 and err.mean() <= 0.5


def test_identity_ops_compile_to_nothing():
    f = make([{"op": "brightness", "amount": 1.0}, {"op": "saturation", "amount": 1.0}])
    assert f.steps == []
    img = random_image(3)
    assert np.array_equal(f(img), img)


def test_matrix_composition_is_exact():
    f = make([{"op": "saturation", "amount": 1.4}, {"op": "hue_rotate", "degrees": 30}])
    img = random_image(4)
    direct = f.recipe.evaluate(img / 255.0) * 255.0
    # only the final rounding, plus cv2.transform's fixed-point arithmetic on uint8
    assert np.abs(f(img) - direct).max() <= 1.0


def test_vignette_and_gradients_compile_to_spatial_steps():
    f = make([{"op": "vignette", "radius": 0.3, "strength": 0.7},
              {"op": "blend", "gradient": {"type": "linear", "angle": 0,
                                           "stops": [[0, "#ff0000"], [1, "#0000ff"]]},
               "mode": "screen", "opacity": 0.5},
              {"op": "blend", "gradient": {"type": "radial",
                                           "stops": [[0, "#ff8800"], [0.5, "#000000"],
                                                     [1, "#2200aa"]]}, "mode": "overlay"},
              {"op": "blend", "gradient": {"type": "radial",
                                           "stops": [[0, "#ffffff"], [1, "#000000"]]},
               "mode": "soft-light"}])
    assert [type(s) for s in f.steps] == [GainVignette, GradientBlend, GradientBlend,
                                          FloatFallback]
    img = random_image(5, (120, 90, 3))
    for op in f.recipe.ops:  # each spatial step alone is exact up to rounding
        single = make([{"op": op.name, **_raw(op)}])
        err = np.abs(single(img) - single.recipe.evaluate(img / 255.0) * 255.0)
        assert err.max() <= 1.0 and err.mean() <= 0.3, op


def _raw(op):
    """Op params back to recipe form (colours to 0-255) to rebuild a one-op filter."""
    raw = {k: v for k, v in op.params.items() if v is not None}
    if "gradient" in raw:
        g = dict(raw["gradient"])
        g["stops"] = [[p, [c * 255 for c in col]] for p, col in g["stops"]]
        raw["gradient"] = g
    if "color" in raw:
        raw["color"] = [c * 255 for c in raw["color"]]
    if raw.get("curves") is False or raw.get("curves") is None:
        raw.pop("curves", None)
    return raw


def test_vignette_darkens_corners_not_centre():
    f = make([{"op": "vignette", "radius": 0.3, "softness": 0.4, "strength": 1.0}])
    img = np.full((90, 120, 3), 200, np.uint8)
    out = f(img)
    assert out[45, 60].tolist() == [200, 200, 200]
    assert out[0, 0].max() <= 5


def test_tone_dependent_vignette_uses_its_curves():
    f = make([{"op": "vignette", "radius": 0.0, "softness": 0.01, "strength": 1.0,
               "curves": {"rgb": [[0, 0], [128, 40], [255, 255]]}}])
    img = np.full((20, 20, 3), 128, np.uint8)
    assert abs(int(f(img)[10, 10, 0]) - 40) <= 1


def test_strength_mixes_with_original():
    f = REGISTRY["toaster"]
    img = random_image(6)
    assert np.array_equal(f(img, strength=0.0), img)
    half = f(img, strength=0.5).astype(int)
    expected = (img.astype(int) + f(img).astype(int)) / 2
    assert np.abs(half - expected).max() <= 1


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        REGISTRY["toaster"](np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="strength"):
        REGISTRY["toaster"](random_image(1), strength=1.5)


def test_masks_are_cached_per_size():
    f = make([{"op": "vignette"}])
    step = f.steps[0]
    f(random_image(1, (40, 50, 3)))
    f(random_image(2, (40, 50, 3)))
    info = step.maps.cache_info()
    assert info.misses == 1 and info.hits == 1


@pytest.mark.parametrize("params,step", [
    ({"color": [0, 0, 0]}, GainVignette),
    ({"color": [200, 120, 40], "mode": "multiply"}, GainVignette),
    ({"color": [200, 120, 40]}, ColourVignette),
    ({"color": [200, 120, 40], "mode": "screen"}, ToneTable),
    ({"curves": {"rgb": [[0, 0], [128, 90], [255, 240]]}}, ToneTable),
])
def test_each_vignette_form_matches_direct_evaluation(params, step):
    f = make([{"op": "vignette", "radius": 0.2, "softness": 0.6, "strength": 0.8, **params}])
    assert [type(s) for s in f.steps] == [step]
    img = random_image(11, (90, 140, 3))
    err = np.abs(f(img) - f.recipe.evaluate(img / 255.0) * 255.0)
    assert err.max() <= 1.0 and err.mean() <= 0.3


def test_curves_before_a_tone_vignette_fold_into_its_table():
    f = make([{"op": "saturation", "amount": 1.2},
              {"op": "curves", "rgb": [[0, 20], [128, 150], [255, 240]]},
              {"op": "contrast", "amount": 1.1},
              {"op": "vignette", "radius": 0.2, "softness": 0.6, "strength": 0.7,
               "curves": {"rgb": [[0, 0], [128, 90], [255, 230]]}}])
    assert [type(s) for s in f.steps] == [Matrix, ToneTable]
    img = random_image(12, (90, 140, 3))
    err = np.abs(f(img) - f.recipe.evaluate(img / 255.0) * 255.0)
    assert err.max() <= 1.5 and err.mean() <= 0.4


def test_mask_lut_and_mask_blend_agree_with_the_reference():
    """Both forms of a tone vignette (OpenCV 5's 16-bit LUT, and the blend fallback)."""
    f = make([{"op": "vignette", "radius": 0.1, "softness": 0.8, "strength": 0.9,
               "curves": {"r": [[0, 30], [255, 200]], "b": [[0, 0], [100, 160], [255, 255]]}}])
    op = f.recipe.ops[0]
    img = random_image(13, (80, 120, 3))
    ref = f.recipe.evaluate(img / 255.0) * 255.0
    forms = [MaskBlend(op, compile_point_ops([_FunctionTone(op.effect)]))]
    if HAS_16BIT_LUT:
        forms.append(MaskLut(op))
    for step in forms:
        err = np.abs(step(img, np.empty_like(img)) - ref)
        assert err.max() <= 1.0 and err.mean() <= 0.3, type(step).__name__


@pytest.mark.skipif(not HAS_16BIT_LUT, reason="OpenCV < 5 has no 16-bit LUT; MaskBlend runs")
def test_a_vignette_before_a_matrix_keeps_the_step_by_step_form():
    f = make([{"op": "vignette", "radius": 0.2, "softness": 0.6,
               "curves": {"rgb": [[0, 0], [128, 90], [255, 230]]}},
              {"op": "saturation", "amount": 1.2}])
    assert [type(s) for s in f.steps] == [MaskLut, Matrix]
