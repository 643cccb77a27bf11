"""Decoding normalises every mode to RGB, keeps stored orientation, and fails with the file name."""
import os
import struct

import numpy as np
import pytest
from PIL import Image

from conftest import ASCII_ORIENTATION, exif_orientation
from instafilters import io
from instafilters.errors import ImageError


def photo(sample_photo, size=(64, 48)):
    return Image.open(sample_photo).convert("RGB").resize(size)


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "LA", "CMYK", "I;16", "1"])
def test_every_mode_decodes_to_rgb(tmp_path, sample_photo, mode):
    im = photo(sample_photo)
    converted = im.convert(mode) if mode != "I;16" else Image.fromarray(
        (np.asarray(im.convert("L"), np.uint16) * 257))
    ext = ".jpg" if mode in ("L", "CMYK") else ".png"
    if mode == "LA" or mode == "1":
        ext = ".png"
    path = tmp_path / f"img{ext}"
    converted.save(path)
    decoded = io.decode(path)
    assert decoded.rgb.dtype == np.uint8 and decoded.rgb.shape == (48, 64, 3)
    if mode in ("L", "I;16", "LA", "1"):  # grey stays grey
        assert np.array_equal(decoded.rgb[..., 0], decoded.rgb[..., 2])


def test_cmyk_jpeg_colours_survive(tmp_path):
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[..., 0] = 200
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(rgb).convert("CMYK").save(path, quality=95)
    out = io.decode(path).rgb
    assert abs(int(out[8, 8, 0]) - 200) <= 6 and out[8, 8, 1] <= 10


def test_transparent_pixels_become_white(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    path = tmp_path / "a.png"
    Image.fromarray(rgba, "RGBA").save(path)
    assert io.decode(path).rgb.min() == 255


def test_png_named_jpeg_is_decoded(tmp_path, sample_photo):
    path = tmp_path / "fake.JPEG"
    photo(sample_photo).save(path, format="PNG")
    decoded = io.decode(path)
    assert decoded.source_format == "PNG" and decoded.rgb.shape == (48, 64, 3)


def test_exif_orientation_is_kept_not_applied(tmp_path, sample_photo):
    im = photo(sample_photo, (60, 40))
    exif = Image.Exif()
    exif[io.ORIENTATION_TAG] = 6
    path = tmp_path / "rotated.jpg"
    im.save(path, exif=exif.tobytes())
    decoded = io.decode(path)
    assert decoded.rgb.shape == (40, 60, 3)  # stored pixels, like torchvision's loader
    assert decoded.orientation == 6
    out = tmp_path / "out.jpg"
    io.save(decoded.rgb, out, orientation=decoded.orientation)
    with Image.open(out) as written:
        assert written.getexif()[io.ORIENTATION_TAG] == 6 and written.size == (60, 40)


@pytest.mark.parametrize("content,fragment", [
    (b"", "empty file"),
    (b"this is not an image", "cannot decode"),
])
def test_bad_files_name_the_file(tmp_path, content, fragment):
    path = tmp_path / "bad.JPEG"
    path.write_bytes(content)
    with pytest.raises(ImageError, match="bad.JPEG") as err:
        io.decode(path)
    assert fragment in str(err.value)


def test_truncated_jpeg_is_an_error(tmp_path, sample_photo):
    path = tmp_path / "cut.jpg"
    photo(sample_photo, (200, 150)).save(path, quality=90)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="cut.jpg"):
        io.decode(path)


def test_missing_and_unreadable(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        io.decode(tmp_path / "none.jpg")
    if os.geteuid() != 0:  # root reads anything
        locked = tmp_path / "locked.jpg"
        locked.write_bytes(b"x")
        locked.chmod(0)
        with pytest.raises(ImageError, match="permission denied"):
            io.decode(locked)


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.new("RGB", (300, 300)).save(path)
    monkeypatch.setattr(io, "MAX_PIXELS", 10_000)  # a real limit, lowered for a small file
    with pytest.raises(ImageError, match="too large"):
        io.decode(path)


def test_atomic_write_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "x.png"
    io.save(np.zeros((4, 4, 3), np.uint8), target)
    assert target.exists() and os.listdir(target.parent) == ["x.png"]


def test_save_to_read_only_dir_fails_cleanly(tmp_path):
    if os.geteuid() == 0:
        target = tmp_path / "file-not-dir" / "x.jpg"
        (tmp_path / "file-not-dir").write_text("a file where a folder should be")
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        target = ro / "x.jpg"
    with pytest.raises(ImageError, match="cannot write"):
        io.save(np.zeros((4, 4, 3), np.uint8), target)


def test_encoding_is_deterministic():
    rgb = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert io.encode_bytes(rgb, "JPEG") == io.encode_bytes(rgb.copy(), "JPEG")


def test_unknown_output_extension():
    with pytest.raises(ImageError, match="unknown output extension"):
        io.format_for("out.xyz")


def test_written_files_get_the_usual_permissions(tmp_path):
    target = tmp_path / "x.jpg"
    io.save(np.zeros((4, 4, 3), np.uint8), target)
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's private 0600


BAD_ORIENTATIONS = {
    "ascii": ASCII_ORIENTATION,
    "negative": exif_orientation(8, 1, struct.pack("<h", -3) + b"\0\0"),
    "too-big": exif_orientation(4, 1, struct.pack("<I", 70000)),
    "byte": exif_orientation(1, 1, b"\x06\0\0\0"),
    "float": exif_orientation(11, 1, struct.pack("<f", 6.0)),
    "zero": exif_orientation(3, 1, b"\0\0\0\0"),
    "nine": exif_orientation(3, 1, struct.pack("<H", 9) + b"\0\0"),
    "truncated": b"Exif\0\0II*\x00\x08\x00\x00\x00\x05\x00\x12\x01",
}


@pytest.mark.parametrize("case", sorted(BAD_ORIENTATIONS))
def test_bad_orientation_tag_is_dropped(tmp_path, sample_photo, case):
    path = tmp_path / "bad-exif.jpg"
    photo(sample_photo, (60, 40)).save(path, quality=90, exif=BAD_ORIENTATIONS[case])
    decoded = io.decode(path)
    assert decoded.orientation is None and decoded.rgb.shape == (40, 60, 3)
    for fmt in ("JPEG", "PNG", "WEBP", "TIFF"):
        assert io.encode_bytes(decoded.rgb, fmt, orientation=decoded.orientation)


def test_valid_orientation_in_a_long_tag_is_kept(tmp_path, sample_photo):
    path = tmp_path / "long.jpg"
    photo(sample_photo, (60, 40)).save(path, exif=exif_orientation(4, 1, struct.pack("<I", 8)))
    assert io.decode(path).orientation == 8


# ---------------------------------------------------------------- modes scale by their range
def test_16_bit_is_scaled_by_the_mode_not_by_the_pixels(tmp_path):
    """Two 16-bit images whose maxima are 255 and 256 once came out 127 and 0.5 apart."""
    ramp = np.arange(256, dtype=np.uint16).reshape(16, 16)
    for name, values, want in (("low", ramp, np.round(ramp / 257)),
                               ("low-plus-one", ramp + 1, np.round((ramp + 1) / 257)),
                               ("expanded", ramp * 257, ramp)):
        path = tmp_path / f"{name}.png"
        Image.fromarray(values).save(path)
        with Image.open(path) as im:
            assert im.mode.startswith("I")  # really a 16-bit file
        grey = io.decode(path).rgb[..., 0]
        assert np.array_equal(grey, want.astype(np.uint8)), name


def test_16_bit_pgm_opened_as_mode_i_uses_the_same_scale(tmp_path):
    path = tmp_path / "g.pgm"
    Image.fromarray(np.full((4, 4), 65535, np.uint16)).save(path)
    assert io.decode(path).rgb.min() == 255


def test_float_tiff_is_read_as_0_to_1(tmp_path):
    path = tmp_path / "f.tif"
    Image.fromarray(np.linspace(0, 1, 256, dtype=np.float32).reshape(16, 16)).save(path)
    grey = io.decode(path).rgb[..., 0]
    assert grey.min() == 0 and grey.max() == 255 and abs(grey.mean() - 127.5) < 1


def test_float_tiff_with_nan_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "nan.tif"
    Image.fromarray(np.full((4, 4), np.nan, np.float32)).save(path)
    with pytest.raises(ImageError, match="nan.tif: cannot convert mode F to RGB"):
        io.decode(path)


@pytest.mark.parametrize("fmt,side", [("WEBP", 16384), ("GIF", 70000), ("JPEG", 65501)])
def test_too_wide_for_the_format_is_a_clear_error(tmp_path, fmt, side):
    with pytest.raises(ValueError, match=f"too large for {fmt}"):
        io.encode_bytes(np.zeros((1, side, 3), np.uint8), fmt)
    target = tmp_path / f"wide.{fmt.lower()}"
    with pytest.raises(ImageError, match=f"wide.{fmt.lower()}: cannot encode"):
        io.save(np.zeros((1, side, 3), np.uint8), target)
    assert not target.exists() and os.listdir(tmp_path) == []


def test_fifo_and_symlink_loop_are_refused_without_reading(tmp_path):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    with pytest.raises(ImageError, match="pipe.jpg: a FIFO, not a regular file"):
        io.decode(fifo)  # would block forever if it were opened for a blocking read
    (tmp_path / "loop.JPEG").symlink_to("b.JPEG")
    (tmp_path / "b.JPEG").symlink_to("loop.JPEG")
    with pytest.raises(ImageError, match="loop.JPEG: too many levels of symbolic links"):
        io.decode(tmp_path / "loop.JPEG")
    with pytest.raises(ImageError, match="a folder, not a regular file"):
        io.decode(tmp_path)


def test_atomic_write_survives_a_taken_temporary_name(tmp_path):
    """The temporary's name is deterministic (prefix, name, pid); if a killed run left one
    with that name, the write goes through another temporary and leaves the leftover alone
    for the build's recovery (which removes files by io.TEMP_PREFIX)."""
    target = tmp_path / "x.jpg"
    leftover = tmp_path / f"{io.TEMP_PREFIX}x.jpg-{os.getpid()}.tmp"
    leftover.write_bytes(b"half a file")
    io.atomic_write_bytes(target, b"whole", temp_suffix=".tmp")
    io.atomic_write_bytes(target, b"again", temp_suffix=".tmp")
    assert target.read_bytes() == b"again" and leftover.read_bytes() == b"half a file"
    assert sorted(os.listdir(tmp_path)) == sorted([leftover.name, "x.jpg"])
    assert target.stat().st_mode & 0o777 == 0o666 & ~_umask()


def test_atomic_write_of_a_very_long_name(tmp_path):
    target = tmp_path / ("n" * 250 + ".jpg")  # the temporary's name would be too long
    io.atomic_write_bytes(target, b"data")
    assert target.read_bytes() == b"data" and os.listdir(tmp_path) == [target.name]


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
