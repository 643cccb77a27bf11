"""Fitting recipes to before/after pairs, and the bundled filters' fidelity to Instagram."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, SAMPLE, cli, one_line_error  # noqa: E402
from instafilters import fit, load_filters  # noqa: E402
from instafilters.errors import InstafiltersError  # noqa: E402
from instafilters.calibration import apply_in_frame  # noqa: E402
from instafilters.fidelity import fidelity  # noqa: E402
from instafilters.io import load_rgb  # noqa: E402
from instafilters.recipe import load_recipe_file, parse_filter  # noqa: E402
from instafilters.settings import calibration_dir  # noqa: E402

CALIBRATION = calibration_dir()
FIXTURES = Path(__file__).parent / "fixtures" / "calibration"
VAL = SAMPLE / "val"
PAPER_REFERENCES = {
    "1977": "1977.jpg", "amaro": "Amaro.jpg", "brannan": "Brannan.jpg",
    "earlybird": "Earlybird.jpg", "hefe": "Hefe.jpg", "hudson": "Hudson.jpg",
    "inkwell": "Inkwell.jpg", "kelvin": "Kelvin.jpg", "lofi": "Lo-Fi.jpg",
    "mayfair": "Mayfair.jpg", "nashville": "Nashville.jpg", "rise": "Rise.jpg",
    "sierra": "Sierra.jpg", "sutro": "Sutro.jpg", "toaster": "Toaster.jpg",
    "valencia": "Valencia.jpg", "walden": "Walden.jpg", "willow": "Willow.jpg",
    "xpro2": "X-ProII.jpg",
}
needs_shared = pytest.mark.skipif(not (CALIBRATION / "instagram" / "Normal.jpg").exists(),
                                  reason=f"needs the calibration pairs in {CALIBRATION}")

KNOWN = {
    "name": "known", "description": "synthetic", "ops": [
        {"op": "curves", "r": [[0, 10], [128, 140], [255, 250]],
         "g": [[0, 0], [128, 120], [255, 255]], "b": [[0, 30], [255, 220]]},
        {"op": "saturation", "amount": 0.7},
        {"op": "vignette", "radius": 0.45, "softness": 0.6,
         "curves": {"rgb": [[0, 0], [128, 80], [255, 200]]}},
    ]}


def _photo():
    return load_rgb(VAL / "n03877845" / "china.JPEG")


def test_fit_recovers_a_known_recipe():
    before = _photo()
    after = fit.compiled(KNOWN)(before)
    recipe = fit.fit_recipe([(before, after)], "recovered",
                            structure=fit.Structure(True, True, True, True, False))
    parse_filter(recipe, file="<test>", index=0)  # a valid recipe
    assert recipe["calibration"]["de_mean"] < 1.0
    # and it generalises to another photo the fit never saw
    other = load_rgb(VAL / "n07920052" / "coffee.JPEG")
    assert fidelity(fit.compiled(recipe)(other), fit.compiled(KNOWN)(other)).mean < 1.5


def test_fit_is_deterministic():
    before = _photo()[::2, ::2]
    after = fit.compiled(KNOWN)(before)
    runs = [fit.fit_recipe([(before, after)], "again", structure=fit.COLOUR) for _ in range(2)]
    assert runs[0] == runs[1]


def test_misaligned_pair_is_an_error_naming_the_file(tmp_path):
    before = _photo()
    shifted = np.roll(before, 3, axis=1)
    path = tmp_path / "shifted.png"
    Image.fromarray(shifted).save(path)
    with pytest.raises(InstafiltersError, match="shifted.png.*not pixel aligned"):
        fit.fit_recipe([(before, path)], "x")
    small = tmp_path / "small.png"
    Image.fromarray(before[:100, :120]).save(small)
    with pytest.raises(InstafiltersError, match="small.png.*does not match"):
        fit.fit_recipe([(before, small)], "x")
    with pytest.raises(InstafiltersError, match="missing.png"):
        fit.fit_recipe([(before, tmp_path / "missing.png")], "x")


def test_structure_of_round_trips():
    s = fit.Structure(True, True, True, True, True)
    model = fit.Model(s)
    p, _, _ = model.initial()
    recipe = parse_filter(fit.recipe_dict("x", model.ops(p)), file="<test>", index=0)
    assert fit.Structure.of(recipe) == s


@pytest.mark.parametrize("structure", [fit.FULL, fit.Structure(True, True, False, True, True,
                                                                vignette_first=True)])
def test_model_jacobian_matches_finite_differences(structure):
    """The solver trusts the analytic Jacobian of every stage kind (curves, matrix, vignette,
    glow): check it against central differences at a point away from the identity."""
    rng = np.random.default_rng(4)
    model = fit.Model(structure)
    p, lo, hi = model.initial()
    p = np.clip(p + rng.normal(0, 0.03, p.shape), lo, hi)
    n = 300
    samples = fit.Samples(rng.integers(0, 256, (n, 3), dtype=np.uint8), rng.random((n, 2)),
                          np.zeros((n, 3)), np.ones(n))
    _, jac = model.forward(p, samples, jacobian=True)
    for i in range(model.size):
        if lo[i] == hi[i]:
            continue  # the vignette centre is held at the middle of the frame
        q1, q2 = p.copy(), p.copy()
        q1[i] -= 1e-6
        q2[i] += 1e-6
        numeric = (model.forward(q2, samples) - model.forward(q1, samples)) / 2e-6
        # a few samples sit on a kink (a clip, a LUT cell edge): compare the typical error
        err = np.abs(jac[:, :, i] - numeric)
        assert np.median(err) < 1e-5 and np.mean(err < 1e-3) > 0.97, (i, err.max())


def test_cli_fit_writes_a_loadable_recipe(tmp_path):
    out = tmp_path / "mine.yaml"
    done = cli("fit", "--before", FIXTURES / "normal.jpg", "--after", FIXTURES / "toaster.jpg",
               "--name", "mytoaster", "--structure", "simple", "-o", out, cwd=tmp_path,
               timeout=300)
    assert done.returncode == 0, done.stderr
    assert "toaster.jpg: mean dE00" in done.stdout
    recipes = load_recipe_file(out)
    assert [r.name for r in recipes] == ["mytoaster"]
    reached = float(done.stdout.split("mean dE00")[1].split(",")[0])
    assert reached < 8.0
    # usable by the other commands through --recipes
    registry = load_filters(out)
    assert "mytoaster" in registry


@pytest.mark.parametrize("where", ["a file", "a read-only filesystem"])
def test_cli_fit_into_an_unwritable_place_fails_before_fitting(tmp_path, where):
    """`-o` is checked first: one line naming it, long before a fit would end (full-size
    pairs that take seconds to fit)."""
    if where == "a file":
        (tmp_path / "plain").write_text("not a folder\n")
        output = tmp_path / "plain" / "sub" / "mine.yaml"
    else:
        output = Path("/proc/mine.yaml")  # not writable even by root
    big = VAL / "n03877845" / "china.JPEG"
    done = cli("fit", "--before", big, "--after", big, "--name", "mine", "-o", output)
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith(f"Error: {output}: cannot write here"), done.stderr
    assert done.stderr.count("\n") == 1 and done.stdout == ""
    assert not output.exists()


def test_cli_fit_mismatched_pair_fails_cleanly(tmp_path):
    small = tmp_path / "small.png"
    Image.fromarray(load_rgb(FIXTURES / "normal.jpg")[:50, :60]).save(small)
    done = cli("fit", "--before", FIXTURES / "normal.jpg", "--after", small, "--name", "x",
               timeout=120)
    one_line_error(done, "small.png")


@pytest.mark.slow
@needs_shared
def test_bundled_paper_filters_meet_their_fidelity_target():
    normal = load_rgb(CALIBRATION / "instagram" / "Normal.jpg")
    registry = load_filters()
    assert [n for n in registry.names("paper") if n != "gotham"] == list(PAPER_REFERENCES)
    scores = {}
    for name, reference in PAPER_REFERENCES.items():
        cal = registry.recipes[name].calibration
        # the references are the top 1080x885 of the app's square output: run in that frame
        assert cal.get("frame") in (None, [1080, 1080])
        out = apply_in_frame(registry[name], normal, cal.get("frame"))
        f = fidelity(out, load_rgb(CALIBRATION / "instagram" / reference))
        assert cal["reference"] == reference
        assert cal["de_mean"] == pytest.approx(f.mean, abs=0.02), name
        assert cal["de_p95"] == pytest.approx(f.p95, abs=0.05), name
        scores[name] = f.mean
    assert max(scores.values()) <= 4.0, scores
    assert np.mean(list(scores.values())) <= 2.6, scores


def _generator():
    spec = importlib.util.spec_from_file_location("make_recipes", REPO / "tools" / "make_recipes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@needs_shared
@pytest.mark.parametrize("name", ["1977", "earlybird"])
def test_bundled_recipe_regenerates(name):
    """Refitting with the generator's code gives (nearly) the committed recipe."""
    committed = load_filters().recipes[name]
    refit = _generator().fit_filter(name, CALIBRATION,
                                    structure=fit.Structure.of(committed))
    photo = _photo()
    ours = fit.compiled(refit)(photo)
    theirs = load_filters()[name](photo)
    assert fidelity(ours, theirs).mean < 1.0
    assert refit["calibration"]["de_mean"] == pytest.approx(committed.calibration["de_mean"],
                                                            abs=0.1)


def test_apply_in_frame_is_the_frame_output_cropped():
    photo = _photo()
    f = fit.compiled(KNOWN)
    h, w = photo.shape[:2]
    framed = apply_in_frame(f, photo[: h // 2], (h, w))
    np.testing.assert_array_equal(framed, f(photo)[: h // 2])
