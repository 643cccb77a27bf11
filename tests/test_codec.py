"""The fast JPEG codec gives Pillow's pixels and Pillow's bytes, and leaves every other case
to Pillow."""
import hashlib
import io as _io

import cv2
import numpy as np
import pytest
from PIL import Image, features

from instafilters import codec, io

needs_simplejpeg = pytest.mark.skipif(codec.simplejpeg is None, reason="simplejpeg not installed")


def crop(sample_photo, size):
    return Image.open(sample_photo).convert("RGB").resize(size, Image.BICUBIC)


def fast_decode(path):
    with open(path, "rb") as f:
        return codec.decode_jpeg(f, io.MAX_PIXELS)


def pillow_pixels(path):
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def pillow_bytes(rgb, quality=90, orientation=None):
    kwargs = dict(quality=quality, subsampling=2)
    if orientation:
        exif = Image.Exif()
        exif[io.ORIENTATION_TAG] = orientation
        kwargs["exif"] = exif.tobytes()
    buffer = _io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buffer, "JPEG", **kwargs)
    return buffer.getvalue()


@needs_simplejpeg
@pytest.mark.parametrize("size", [(500, 375), (61, 47)])
@pytest.mark.parametrize("subsampling,progressive", [(2, False), (1, False), (0, False),
                                                     (2, True)])
def test_fast_decode_gives_pillows_pixels(tmp_path, sample_photo, size, subsampling,
                                          progressive):
    path = tmp_path / "x.JPEG"
    crop(sample_photo, size).save(path, quality=90, subsampling=subsampling,
                                  progressive=progressive)
    rgb, orientation = fast_decode(path)
    assert orientation is None
    assert np.array_equal(rgb, pillow_pixels(path))


@needs_simplejpeg
def test_fallback_decoder_gives_the_same_result(tmp_path, sample_photo, monkeypatch):
    path = tmp_path / "rotated.JPEG"
    exif = Image.Exif()
    exif[io.ORIENTATION_TAG] = 8
    crop(sample_photo, (120, 90)).save(path, quality=90, exif=exif.tobytes())
    fast = io.decode(path)
    monkeypatch.setattr(codec, "simplejpeg", None)
    slow = io.decode(path)
    assert fast_decode(path) is None  # really the fallback
    assert fast.orientation == slow.orientation == 8
    assert np.array_equal(fast.rgb, slow.rgb)


@needs_simplejpeg
@pytest.mark.parametrize("kind", ["grey", "cmyk", "png", "truncated"])
def test_other_files_go_to_pillow(tmp_path, sample_photo, kind):
    path = tmp_path / "x.JPEG"
    im = crop(sample_photo, (64, 48))
    if kind == "grey":
        im.convert("L").save(path, "JPEG")
    elif kind == "cmyk":
        im.convert("CMYK").save(path, "JPEG")
    elif kind == "png":
        im.save(path, "PNG")
    else:
        im.save(path, "JPEG")
        path.write_bytes(path.read_bytes()[:-200])
    assert fast_decode(path) is None


@needs_simplejpeg
def test_jpeg_decompression_bomb_is_refused(tmp_path, sample_photo, monkeypatch):
    path = tmp_path / "big.jpg"
    crop(sample_photo, (300, 300)).save(path)
    monkeypatch.setattr(io, "MAX_PIXELS", 10_000)
    with pytest.raises(io.ImageError, match="too large"):
        io.decode(path)


@pytest.mark.parametrize("quality", [50, 75, 90, 95, 100])
@pytest.mark.parametrize("size", [(1, 1), (17, 9), (64, 48)])
@pytest.mark.parametrize("orientation", [None, 6])
def test_encoder_writes_pillows_bytes(sample_photo, quality, size, orientation):
    rgb = np.asarray(crop(sample_photo, size))
    fast = codec.encode_jpeg(rgb, quality, orientation)
    assert fast == pillow_bytes(rgb, quality, orientation)
    assert io.encode_bytes(rgb, "JPEG", quality, orientation) == fast


def libjpeg_versions() -> str:
    opencv = [line.strip() for line in cv2.getBuildInformation().splitlines()
              if line.strip().startswith("JPEG:")]
    return f"Pillow libjpeg-turbo {features.version('libjpeg_turbo')}, OpenCV {opencv}"


# sha256 of the q90 encode of the fixed pattern below (first pinned with Pillow's libjpeg-turbo
# 3.2.0 and OpenCV's 3.1.2, which agree byte for byte; the message prints the versions).
# A change means outputs are no longer byte-identical to earlier builds.
PINNED_JPEG_SHA256 = "f7c5a657ccdb8726280c2048a401281b74753bc94c8e3b0ba989939d6a73daba"


def test_encoder_bytes_are_pinned():
    y, x = np.mgrid[0:48, 0:64]
    rgb = np.stack([(x * 4) % 256, (y * 5) % 256, (x * y) % 256], axis=2).astype(np.uint8)
    digest = hashlib.sha256(io.encode_bytes(rgb, "JPEG", 90, orientation=6)).hexdigest()
    assert digest == PINNED_JPEG_SHA256, f"JPEG bytes changed ({libjpeg_versions()})"
