"""Hostile inputs (issue 7), each through the real CLI in a subprocess, bounded by a timeout:
a clear one-line error naming the file, or the work done; never a traceback or a hang."""
import os

import numpy as np
import pytest
from PIL import Image

from conftest import ASCII_ORIENTATION, cli, one_line_error, write_imagenet_tree


def ok(result):
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "Warning" not in result.stderr, result.stderr
    return result.stdout


def build_failed(result, *fragments) -> str:
    """A build logs to stderr as it goes; its last line is the one error."""
    err = result.stderr.strip()
    assert result.returncode == 1 and "Traceback" not in err, (result.returncode, err)
    last = err.splitlines()[-1]
    assert last.startswith("Error:") and all(str(f) in last for f in fragments), err
    return err


def jpeg(path, size=(60, 40), **save):
    rng = np.random.default_rng(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(
        path, "JPEG", quality=90, **save)
    return path


# ---------------------------------------------------------------- EXIF orientation
def test_apply_with_a_bad_orientation_tag_writes_pixels_as_stored(tmp_path):
    src = jpeg(tmp_path / "bad.jpg", exif=ASCII_ORIENTATION)
    out = tmp_path / "out.jpg"
    ok(cli("apply", "-f", "toaster", src, out))
    with Image.open(out) as im:
        assert im.size == (60, 40) and 0x112 not in im.getexif()


# ---------------------------------------------------------------- images the encoders refuse
@pytest.mark.parametrize("ext", [".gif", ".webp"])
def test_apply_to_a_format_too_small_for_the_image_is_one_line(tmp_path, ext):
    wide = tmp_path / "wide.png"
    Image.new("RGB", (70000, 2), (90, 120, 150)).save(wide)
    out = tmp_path / f"out{ext}"
    one_line_error(cli("apply", "-f", "toaster", wide, out), out, "too large for")
    assert not out.exists()


def test_float_tiff_in_0_1_is_not_black(tmp_path):
    src = tmp_path / "float.tif"
    Image.fromarray(np.full((16, 16), 0.5, np.float32)).save(src)
    out = tmp_path / "out.png"
    ok(cli("apply", "-f", "inkwell", "--strength", "0", src, out))
    assert abs(np.asarray(Image.open(out)).mean() - 128) <= 1


# ---------------------------------------------------------------- FIFOs and recipe bombs
@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "pipe.jpg"
    os.mkfifo(path)
    return path


def test_apply_refuses_a_fifo_at_once(tmp_path, fifo):
    one_line_error(cli("apply", "-f", "toaster", fifo, tmp_path / "out.jpg", timeout=20),
                   fifo, "a FIFO, not a regular file")


def test_preview_refuses_a_fifo_at_once(tmp_path, fifo):
    one_line_error(cli("preview", fifo, "-o", tmp_path / "sheet.jpg", timeout=20),
                   fifo, "a FIFO, not a regular file")


@pytest.mark.parametrize("command", ["list", "apply", "preview"])
def test_recipes_option_refuses_a_fifo_at_once(tmp_path, sample_photo, command):
    recipes = tmp_path / "my.yaml"
    os.mkfifo(recipes)
    args = {"list": [], "apply": ["-f", "toaster", sample_photo, tmp_path / "o.jpg"],
            "preview": [sample_photo, "-o", tmp_path / "s.jpg"]}[command]
    one_line_error(cli(command, *args, "--recipes", recipes, timeout=20),
                   recipes, "a FIFO, not a regular file")


@pytest.mark.parametrize("name,body,fragment", [
    ("laughs.yaml", "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a]\n"
                    "filters: *b\n", "anchors and aliases"),
    ("deep.yaml", "filters: " + "[" * 100_000, "nest"),
    ("big.yaml", "filters: []\n" + "#" * 10_000_000 + "\n", "over the limit"),
])
def test_recipe_bombs_are_one_line_and_quick(tmp_path, name, body, fragment):
    path = tmp_path / name
    path.write_text(body)
    err = one_line_error(cli("list", "--recipes", path, timeout=20), path, fragment)
    assert len(err) < 300


# ---------------------------------------------------------------- the tree walk
def images(root, **kw):
    from instafilters.tree import walk
    return [e.rel for e in walk(root, **kw) if e.is_image]


def test_symlink_loop_is_reported_by_build_and_apply_without_a_traceback(tmp_path):
    src = tmp_path / "src"
    rels = write_imagenet_tree(src, splits=("val",), classes=1, per_class=2, extras=False)
    folder = src / "val" / "n01440764"
    (folder / "loop.JPEG").symlink_to("b.JPEG")
    (folder / "b.JPEG").symlink_to("loop.JPEG")
    out = tmp_path / "out"
    for _ in range(2):  # and on the rerun
        err = build_failed(cli("build", "--src", src, "--out", out, "--filters", "toaster",
                               "-j1"), "2 of 4 sources failed")
    assert all((out / "toaster" / rel).is_file() for rel in rels)
    failures = b"".join(p.read_bytes() for p in (out / ".instafilters").glob("failures*"))
    assert b"loop.JPEG" in failures and b"symbolic links" in failures, (err, failures)
    one_line_error(cli("apply", "-f", "toaster", folder / "loop.JPEG", tmp_path / "o.jpg"),
                   "loop.JPEG", "too many levels of symbolic links")


def test_walk_never_enters_an_output_tree(tmp_path):
    src, other = tmp_path / "src", tmp_path / "other-build"
    rels = write_imagenet_tree(src, splits=("val",), classes=1, per_class=2, extras=False)
    jpeg(src / "old-build" / "toaster" / "val" / "x.JPEG")  # another build's output in --src
    (src / "old-build" / ".instafilters").mkdir()
    jpeg(other / "toaster" / "y.JPEG")
    (other / ".instafilters").mkdir()
    (src / "linked").symlink_to(other / "toaster")  # a link into an output tree
    assert images(src) == rels
    # the walk of an output tree itself (eval's filtered tree) still sees it all
    assert images(other / "toaster") == ["y.JPEG"] and images(other) == ["toaster/y.JPEG"]


def test_symlink_into_out_does_not_grow_the_output_tree(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    rels = write_imagenet_tree(src, splits=("val",), classes=1, per_class=2, extras=False)
    (src / "mirror").symlink_to(out / "toaster", target_is_directory=True)  # dangling at first
    args = ("build", "--src", src, "--out", out, "--filters", "toaster", "-j1")
    for _ in range(3):
        ok(cli(*args))
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*.JPEG"))
    assert written == [f"toaster/{r}" for r in rels]


def test_walk_skips_fifos_and_keeps_any_bytes_in_names(tmp_path):
    root = tmp_path / "tree"
    jpeg(root / "a" / "ok.JPEG")
    os.mkfifo(root / "a" / "pipe.JPEG")
    os.mkfifo(root / "a" / "pipe.txt")
    odd = os.fsdecode(b"caf\xe9-\xff\n\t.JPEG")  # not UTF-8, with a newline and a tab
    jpeg(root / "a" / odd)
    from instafilters.tree import walk
    entries = [(e.rel, e.is_image) for e in walk(root)]
    assert entries == [("a/" + odd, True), ("a/ok.JPEG", True)]
    assert os.fsencode(entries[0][0]) == b"a/caf\xe9-\xff\n\t.JPEG"  # the bytes, faithfully


def test_build_with_fifos_in_src_finishes(tmp_path):
    src = tmp_path / "src"
    rels = write_imagenet_tree(src, splits=("val",), classes=1, per_class=2, extras=False)
    os.mkfifo(src / "val" / "pipe.JPEG")
    os.mkfifo(src / "val" / "notes")
    out = tmp_path / "out"
    text = ok(cli("build", "--src", src, "--out", out, "--filters", "toaster", "-j1"))
    assert f"of {len(rels)} sources" in text and "0 non-image" in text


# ---------------------------------------------------------------- names of any bytes
def test_apply_with_names_of_any_bytes(tmp_path):
    src = jpeg(tmp_path / os.fsdecode(b"caf\xe9 \xff.jpg"))
    out = tmp_path / os.fsdecode(b"out\xff.png")
    text = ok(cli("apply", "-f", "toaster", src, out))
    assert out.is_file() and len(text.strip().splitlines()) == 1
    bad = tmp_path / os.fsdecode(b"bad\xff\n\tname.jpg")
    bad.write_bytes(b"not an image")
    err = one_line_error(cli("apply", "-f", "toaster", bad, tmp_path / "o.png"),
                         "cannot decode image (not an image format Pillow can read)")
    assert r"'" + str(tmp_path) + r"/bad\xff\x0a\x09name.jpg'" in err  # quoted, bytes readable


