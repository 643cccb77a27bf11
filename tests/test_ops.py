"""Every op against hand-computed values; blend modes against the W3C formulas."""
import numpy as np
import pytest
from scipy.interpolate import PchipInterpolator

from instafilters import ops
from instafilters.ops.blend import AFFINE_IN_SOURCE


def test_monotone_spline_matches_scipy_pchip():
    rng = np.random.default_rng(1)
    for n in (2, 3, 5, 16):
        xs = np.sort(rng.choice(np.arange(1, 255), n, replace=False)).astype(float)
        ys = rng.uniform(0, 255, n)
        grid = np.linspace(xs[0], xs[-1], 1000)
        ours = ops.monotone_spline(xs, ys)(grid)
        np.testing.assert_allclose(ours, PchipInterpolator(xs, ys)(grid), atol=1e-9)


def test_curve_is_monotone_without_overshoot():
    points = [[0, 0], [60, 20], [64, 200], [200, 210], [255, 255]]
    y = ops.curve(np.linspace(0, 1, 2001), points) * 255
    assert np.all(np.diff(y) >= -1e-4)
    assert y.min() >= 0 and y.max() <= 255 + 1e-4


def test_curve_flat_outside_knots_and_identity():
    assert ops.curve(np.array([0.0, 0.1]), [[51, 100], [255, 255]]).tolist() == pytest.approx(
        [100 / 255, 100 / 255])
    x = np.linspace(0, 1, 11)
    np.testing.assert_allclose(ops.curve(x, [[0, 0], [255, 255]]), x, atol=1e-6)


def test_levels_hand_values():
    assert ops.levels(np.array(125 / 255), 50, 200) == pytest.approx(0.5)
    assert ops.levels(np.array(0.25), gamma=2.0) == pytest.approx(0.5)
    assert ops.levels(np.array(1.0), out_black=20, out_white=220) == pytest.approx(220 / 255)
    assert ops.levels(np.array(10 / 255), in_black=20) == pytest.approx(0.0)


def test_gamma_brightness_contrast_hand_values():
    assert ops.gamma(np.array(0.25), 2.0) == pytest.approx(0.5)
    assert ops.brightness(np.array(0.4), 1.5) == pytest.approx(0.6)
    assert ops.contrast(np.array(0.7), 2.0) == pytest.approx(0.9)
    assert ops.contrast(np.array(0.5), 3.0) == pytest.approx(0.5)


def test_matrices_identity_and_grey_invariance():
    np.testing.assert_allclose(ops.saturation_matrix(1.0), np.eye(3), atol=1e-12)
    np.testing.assert_allclose(ops.hue_rotate_matrix(0), np.eye(3), atol=1e-12)
    np.testing.assert_allclose(ops.hue_rotate_matrix(360), np.eye(3), atol=1e-12)
    np.testing.assert_allclose(ops.grayscale_matrix(0.0), np.eye(3), atol=1e-12)
    np.testing.assert_allclose(ops.sepia_matrix(0.0), np.eye(3), atol=1e-12)
    for m in (ops.saturation_matrix(0.3), ops.hue_rotate_matrix(77), ops.grayscale_matrix(1)):
        np.testing.assert_allclose(m.sum(axis=1), 1.0, atol=2e-3)  # grey stays grey


def test_matrices_hand_values():
    np.testing.assert_allclose(ops.saturation_matrix(0)[0], [0.213, 0.715, 0.072])
    np.testing.assert_allclose(ops.grayscale_matrix(1)[1], [0.2126, 0.7152, 0.0722])
    white = ops.apply_matrix(np.ones((1, 3)), ops.sepia_matrix(1.0))
    np.testing.assert_allclose(white[0], [1.351, 1.203, 0.937], atol=1e-6)
    shifted = ops.apply_matrix(np.zeros((1, 3)), np.eye(3), offset=(0.1, 0.2, 0.3))
    np.testing.assert_allclose(shifted[0], [0.1, 0.2, 0.3], atol=1e-7)


# (mode, cb, cs, expected) computed by hand from https://www.w3.org/TR/compositing-1/
W3C_CASES = [
    ("normal", 0.3, 0.6, 0.6),
    ("multiply", 0.5, 0.4, 0.2),
    ("screen", 0.5, 0.4, 0.7),
    ("overlay", 0.3, 0.6, 0.36),                 # cb <= .5: 2 cb cs
    ("overlay", 0.8, 0.5, 0.8),                  # 1 - 2 (1 - cb)(1 - cs)
    ("darken", 0.3, 0.6, 0.3),
    ("lighten", 0.3, 0.6, 0.6),
    ("color-dodge", 0.4, 0.5, 0.8),
    ("color-dodge", 0.0, 0.9, 0.0),
    ("color-dodge", 0.5, 1.0, 1.0),
    ("color-dodge", 0.6, 0.5, 1.0),              # min(1, 1.2)
    ("color-burn", 0.6, 0.5, 0.2),
    ("color-burn", 1.0, 0.0, 1.0),
    ("color-burn", 0.5, 0.0, 0.0),
    ("hard-light", 0.5, 0.8, 0.8),               # screen(0.5, 0.6)
    ("hard-light", 0.5, 0.2, 0.2),               # 0.5 * 0.4
    ("soft-light", 0.2, 0.4, 0.168),             # cb - (1 - 2cs) cb (1 - cb)
    ("soft-light", 0.3, 0.6, 0.3 + 0.2 * (np.sqrt(0.3) - 0.3)),
    ("soft-light", 0.2, 0.8, 0.3488),            # D(cb) = ((16cb - 12)cb + 4)cb = 0.448
    ("difference", 0.2, 0.7, 0.5),
    ("exclusion", 0.5, 0.4, 0.5),
    ("exclusion", 0.2, 0.7, 0.62),
]


@pytest.mark.parametrize("mode,cb,cs,expected", W3C_CASES)
def test_blend_modes_match_w3c(mode, cb, cs, expected):
    assert float(ops.blend(cb, cs, mode)) == pytest.approx(expected, abs=1e-9)


def test_every_mode_is_covered_and_bounded():
    assert {c[0] for c in W3C_CASES} == set(ops.BLEND_MODES)
    grid = np.linspace(0, 1, 51)
    cb, cs = np.meshgrid(grid, grid)
    for mode in ops.BLEND_MODES:
        out = ops.blend(cb, cs, mode)
        assert out.min() >= -1e-12 and out.max() <= 1 + 1e-12, mode


@pytest.mark.parametrize("mode", sorted(AFFINE_IN_SOURCE))
def test_affine_modes_really_are_affine_in_source(mode):
    cb = np.linspace(0, 1, 101)[:, None]
    c0, c1, t = 0.2, 0.9, 0.35
    mixed = ops.blend(cb, (1 - t) * c0 + t * c1, mode)
    np.testing.assert_allclose(
        mixed, (1 - t) * ops.blend(cb, c0, mode) + t * ops.blend(cb, c1, mode), atol=1e-12)


def test_composite_opacity():
    assert float(ops.composite(0.2, 0.6, "normal", 0.25)) == pytest.approx(0.3)
    assert float(ops.composite(0.5, 0.4, "multiply", 0.0)) == pytest.approx(0.5)


def test_vignette_mask_values():
    m = ops.vignette_mask(101, 151, radius=0.4, softness=0.3, strength=0.8)
    assert m[50, 75] == 0.0                       # centre untouched
    assert m[0, 0] == pytest.approx(0.8, abs=1e-3)  # corner (d ~ 1 >= 0.7): full strength
    np.testing.assert_allclose(m, m[::-1, ::-1], atol=1e-6)  # symmetric about the centre
    inv = ops.vignette_mask(101, 151, radius=0.4, softness=0.3, strength=0.8, invert=True)
    assert inv[50, 75] == pytest.approx(0.8) and inv[0, 0] == pytest.approx(0.0, abs=1e-3)
    # smoothstep half way: d = radius + softness / 2 gives half strength
    d = ops.radial_distance(101, 151)
    i = np.unravel_index(np.argmin(np.abs(d - 0.55)), d.shape)
    assert m[i] == pytest.approx(0.4, abs=0.02)


def test_radial_distance_corners_and_circle():
    d = ops.radial_distance(200, 300)
    assert d.max() == pytest.approx(1.0, abs=0.01)
    c = ops.radial_distance(200, 300, shape="circle")
    # circle: same distance for equal pixel offsets along both axes
    assert c[100, 150 + 60] == pytest.approx(c[100 + 60, 150], abs=0.01)


def test_gradient_weights_partition_of_unity():
    pos = ops.linear_position(50, 80, angle=0)
    w = ops.gradient_weights(pos, [0.0, 0.3, 1.0])
    np.testing.assert_allclose(sum(w), 1.0, atol=1e-6)
    assert w[0][:, 0].mean() > 0.9 and w[2][:, -1].mean() > 0.9
    col = int(0.3 * 80)
    assert w[1][:, col].mean() > 0.9
