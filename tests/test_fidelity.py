"""CIEDE2000 in numpy: against scikit-image and the published test pairs; the `fidelity`
command that measures the bundled filters with it."""
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import cli
from instafilters.fidelity import ciede2000, delta_e, fidelity, rgb_to_lab


def _skimage_color():
    return pytest.importorskip("skimage.color")

# Sharma, Wu and Dalal (2005), "The CIEDE2000 color-difference formula: implementation
# notes, supplementary test data, and mathematical observations", Table 1 (pairs 1-3, 7,
# 17-21, 25, 26, 31, 34).
SHARMA = [
    ((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
    ((50.0, 3.1571, -77.2803), (50.0, 0.0, -82.7485), 2.8615),
    ((50.0, 2.8361, -74.0200), (50.0, 0.0, -82.7485), 3.4412),
    ((50.0, 0.0, 0.0), (50.0, -1.0, 2.0), 2.3669),
    ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
    ((50.0, 2.5, 0.0), (61.0, -5.0, 29.0), 22.8977),
    ((50.0, 2.5, 0.0), (56.0, -27.0, -3.0), 31.9030),
    ((50.0, 2.5, 0.0), (58.0, 24.0, 15.0), 19.4535),
    ((50.0, 2.5, 0.0), (50.0, 3.1736, 0.5854), 1.0000),
    ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
    ((63.0109, -31.0961, -5.8663), (62.8187, -29.7946, -4.0864), 1.2630),
    ((22.7233, 20.0904, -46.6940), (23.0331, 14.9730, -42.5619), 2.0373),
    ((2.0776, 0.0795, -1.1350), (0.9033, -0.0636, -0.5514), 0.9082),
]


def test_sharma_reference_pairs():
    lab1 = np.array([p[0] for p in SHARMA])
    lab2 = np.array([p[1] for p in SHARMA])
    expected = np.array([p[2] for p in SHARMA])
    np.testing.assert_allclose(ciede2000(lab1, lab2), expected, atol=5e-5)
    np.testing.assert_allclose(ciede2000(lab2, lab1), expected, atol=5e-5)  # symmetric


def test_lab_matches_skimage_on_random_colours():
    skimage_color = _skimage_color()
    rgb = np.random.default_rng(0).integers(0, 256, (5000, 3), dtype=np.uint8)
    np.testing.assert_allclose(rgb_to_lab(rgb), skimage_color.rgb2lab(rgb / 255.0), atol=1e-3)


def test_ciede2000_matches_skimage_on_random_colours():
    skimage_color = _skimage_color()
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    near = np.clip(a.astype(int) + rng.integers(-6, 7, a.shape), 0, 255).astype(np.uint8)
    for other in (b, near):
        ours = delta_e(a, other)
        theirs = skimage_color.deltaE_ciede2000(skimage_color.rgb2lab(a / 255.0),
                                                skimage_color.rgb2lab(other / 255.0))
        np.testing.assert_allclose(ours, theirs, atol=2e-3)


def test_fidelity_summary():
    rng = np.random.default_rng(2)
    a = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    assert fidelity(a, a).mean == 0.0 and fidelity(a, a).p95 == 0.0
    f = fidelity(a, 255 - a)
    d = delta_e(a, 255 - a)
    assert f.mean == pytest.approx(d.mean()) and f.p95 == pytest.approx(np.percentile(d, 95))
    assert f.p95 >= f.mean > 0
    assert "mean" in str(f)


def test_mismatched_shapes_are_an_error():
    with pytest.raises(ValueError, match="same size"):
        delta_e(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 3), np.uint8))


# -- the `instafilters fidelity` command (instafilters.calibration) ---------------------------

FIXTURES = Path(__file__).parent / "fixtures" / "calibration"


def test_fidelity_command_reports_the_filters_whose_reference_is_there(tmp_path):
    """A calibration folder holding only Toaster's reference (small copies): one row, and
    the paper average over it."""
    (tmp_path / "instagram").mkdir()
    shutil.copy(FIXTURES / "normal.jpg", tmp_path / "instagram" / "Normal.jpg")
    shutil.copy(FIXTURES / "toaster.jpg", tmp_path / "instagram" / "Toaster.jpg")
    done = cli("fidelity", "--calibration", tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| filter | set | reference | dE00 mean")
    assert rows[1].startswith("| toaster | paper | Toaster.jpg | ")
    mean, p95, nothing = (float(x) for x in rows[1].split("|")[4:7])
    assert 0 < mean <= p95 and mean < nothing
    assert rows[2].startswith("| **average, 1 paper** | | | ") and len(rows) == 3


def test_fidelity_command_without_calibration_pairs_is_one_line(tmp_path):
    """The folder comes from --calibration, else from $INSTAFILTERS_SHARED/calibration."""
    done = cli("fidelity", "--calibration", tmp_path, timeout=120)
    assert done.returncode == 1
    assert done.stderr == (f"Error: {tmp_path / 'instagram' / 'Normal.jpg'}: no such file "
                           "(the calibration pairs; set INSTAFILTERS_SHARED or --calibration)\n")
    done = cli("fidelity", env={"INSTAFILTERS_SHARED": str(tmp_path)}, timeout=120)
    assert done.returncode == 1
    assert done.stderr.startswith(f"Error: {tmp_path / 'calibration' / 'instagram'}")
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1


def test_lab_gradient_is_the_derivative_of_rgb_to_lab():
    """The fitter's Jacobian uses rgb_to_lab_grad: same values, and the slope of rgb_to_lab."""
    from instafilters.fidelity import rgb_to_lab_grad
    x = np.random.default_rng(3).uniform(0.01, 0.99, (200, 3))
    lab, jac = rgb_to_lab_grad(x)
    np.testing.assert_array_equal(lab, rgb_to_lab(x))
    for c in range(3):
        step = np.zeros(3)
        step[c] = 1e-6
        numeric = (rgb_to_lab(x + step) - rgb_to_lab(x - step)) / 2e-6
        np.testing.assert_allclose(jac[:, :, c], numeric, rtol=1e-4, atol=1e-3)
