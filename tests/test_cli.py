"""The filter commands, run as real subprocesses."""
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import instafilters
from conftest import cli, one_line_error
from instafilters.transforms import InstaFilter

PAPER = ["1977", "amaro", "brannan", "earlybird", "gotham", "hefe", "hudson", "inkwell",
         "kelvin", "lofi", "mayfair", "nashville", "rise", "sierra", "sutro", "toaster",
         "valencia", "walden", "willow", "xpro2"]


def run(*args, check=True):
    result = cli(*args)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_paper_set_is_the_twenty_filters():
    assert instafilters.list_filters("paper") == PAPER


@pytest.mark.parametrize("alias,name", [("lordkelvin", "kelvin"), ("lomofi", "lofi"),
                                        ("x-pro-ii", "xpro2"), ("Lo-Fi", "lofi"),
                                        ("XPRO2", "xpro2")])
def test_paper_aliases(alias, name):
    assert instafilters.load_filters().canonical(alias) == name


@pytest.mark.parametrize("command", ["list", "apply", "preview", "fit", "fidelity", "build", "eval"])
def test_every_command_has_help_with_an_example(command):
    out = run(command, "--help").stdout
    assert "Example" in out and "Usage:" in out


def test_top_level_help_lists_commands_without_heavy_imports():
    code = ("import sys; from instafilters.cli import main\n"
            "try: main(['list'])\nexcept SystemExit: pass\n"
            "assert 'torch' not in sys.modules and 'dask' not in sys.modules, 'heavy import'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "toaster" in result.stdout


def test_list_shows_names_aliases_and_descriptions():
    out = run("list").stdout
    lines = out.strip().splitlines()
    assert len(lines) == 21  # header + 20
    assert "lordkelvin" in out and "lomofi" in out and "x-pro-ii" in out
    assert len(run("list", "--filters", "all").stdout.strip().splitlines()) > 21


def test_apply_png_is_lossless_and_equals_the_api(tmp_path, sample_photo):
    out = tmp_path / "toaster.png"
    result = run("apply", "-f", "toaster", sample_photo, out)
    assert "toaster" in result.stdout
    expected = instafilters.apply(Image.open(sample_photo), "toaster")
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(expected))


def test_apply_strength_and_alias(tmp_path, sample_photo):
    full, half = tmp_path / "full.png", tmp_path / "half.png"
    run("apply", "-f", "lordkelvin", sample_photo, full)
    run("apply", "-f", "kelvin", "--strength", "0.5", sample_photo, half)
    original = np.asarray(Image.open(sample_photo).convert("RGB"), dtype=int)
    mix = (original + np.asarray(Image.open(full), dtype=int)) / 2
    assert np.abs(np.asarray(Image.open(half), dtype=int) - mix).max() <= 1


def test_apply_grayscale_input_writes_rgb_jpeg(tmp_path, sample_dir):
    out = tmp_path / "camera.jpg"
    run("apply", "-f", "hudson", sample_dir / "val/n04485082/camera.JPEG", out)
    with Image.open(out) as im:
        assert im.mode == "RGB" and im.format == "JPEG" and im.size == (512, 512)


@pytest.mark.parametrize("args,fragment", [
    (["apply", "-f", "nosuch", "{photo}", "{tmp}/o.jpg"], "unknown filter 'nosuch'"),
    (["apply", "-f", "toaster", "{tmp}/missing.jpg", "{tmp}/o.jpg"], "missing.jpg: no such file"),
    (["apply", "-f", "toaster", "{photo}", "{tmp}/o.xyz"], "unknown output extension"),
    (["apply", "-f", "toaster", "{tmp}/notimage.JPEG", "{tmp}/o.jpg"], "notimage.JPEG: cannot decode"),
    (["preview", "{photo}", "--filters", "toaster,bogus"], "unknown filter 'bogus'"),
])
def test_errors_are_one_line(tmp_path, sample_photo, args, fragment):
    (tmp_path / "notimage.JPEG").write_text("hello")
    args = [a.format(photo=sample_photo, tmp=tmp_path) for a in args]
    one_line_error(run(*args, check=False), fragment)


def test_preview_contact_sheet(tmp_path, sample_photo):
    out = tmp_path / "sheet.jpg"
    result = run("preview", sample_photo, "-o", out, "--width", "100")
    assert "20 filters" in result.stdout
    with Image.open(out) as sheet:
        w, h = sheet.size
    assert w > 5 * 100 and h > 3 * 60  # 21 tiles in a grid


def test_api_returns_the_type_it_was_given(sample_photo):
    pil = Image.open(sample_photo).convert("RGB")
    out = instafilters.apply(pil, "gotham", strength=0.7)
    assert isinstance(out, Image.Image) and out.size == pil.size
    arr = instafilters.apply(np.asarray(pil), "gotham", strength=0.7)
    assert isinstance(arr, np.ndarray) and np.array_equal(arr, np.asarray(out))
    gray = instafilters.apply(np.asarray(pil.convert("L")), "inkwell")
    assert gray.shape == (pil.size[1], pil.size[0], 3)


@pytest.mark.parametrize("command", [["list"], ["eval", "resnet50", "--clean", "."]])
def test_recipes_only_without_a_recipes_file_is_a_usage_error_in_option_names(command):
    """One check for the library and every command; each says it in its own names."""
    result = cli(*command, "--recipes-only", timeout=60)
    assert result.returncode == 2, result.stderr
    assert "--recipes-only needs --recipes FILE" in result.stderr
    with pytest.raises(instafilters.InstafiltersError, match="recipes_only=True needs a recipes file"):
        InstaFilter("toaster", recipes_only=True)
