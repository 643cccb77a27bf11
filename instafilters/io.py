"""The only place that decodes and encodes images.

Decoding normalises every input to an HxWx3 uint8 RGB array (grayscale, palette, alpha,
CMYK, 16-bit all become RGB) and keeps the pixels as stored: an EXIF orientation tag is not
applied, because torchvision's loader does not apply it either, so a filtered image stays
pixel-aligned with its source; the tag is carried to the output so viewers agree.
Writes are atomic: a temporary file in the destination folder, fsync-free rename.
"""
from __future__ import annotations

import contextlib
import errno
import os
import tempfile
import warnings
from dataclasses import dataclass
from io import BytesIO as _BytesIO
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from . import codec
from .codec import ORIENTATION_TAG
from .errors import ImageError
from .files import display, open_regular, why

# Decompression-bomb guard: a real photo is far below this (ImageNet's largest is ~ 40 MP).
MAX_PIXELS = 178_956_970  # Pillow's own default, made explicit and an error, not a warning
TEMP_PREFIX = ".instafilters-tmp-"
DEFAULT_JPEG_QUALITY = 90
# Output format by extension. A .pgm is written as a colour netpbm file (P6: a filter's
# output has colour; readers go by the magic number, not the name).
_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".webp": "WEBP",
            ".tif": "TIFF", ".tiff": "TIFF", ".ppm": "PPM", ".pgm": "PPM", ".gif": "GIF"}
# Every name a build takes for an image can be written back under the same name: the two
# lists disagreed once, and every .pgm source failed on every run.
IMAGE_EXTENSIONS = frozenset(_FORMATS)


# Largest side each encoder can write (libjpeg's JPEG_MAX_DIMENSION, WebP's 14-bit sizes,
# GIF's 16-bit ones); PNG, TIFF, BMP and PPM take anything a decoded image can be.
MAX_SIDE = {"JPEG": 65500, "WEBP": 16383, "GIF": 65535}


def check_encodable(shape, fmt: str) -> None:
    """ValueError naming the limit, before an encoder fails with a cryptic OverflowError,
    ValueError or 'broken data stream'."""
    limit = MAX_SIDE.get(fmt)
    if limit is not None and max(shape[:2]) > limit:
        raise ValueError(f"{shape[1]}x{shape[0]} pixels is too large for {fmt} (at most "
                         f"{limit} pixels a side)")


def is_image_path(path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


@dataclass
class Decoded:
    """Pixels plus what must travel to the output."""
    rgb: np.ndarray
    orientation: int | None = None
    source_format: str | None = None


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> RGB, scaled by the mode's range, never by the pixels' values.

    Transparency is composited over white, as a browser would. 16-bit modes (I;16*) and
    mode I (32-bit int, which is how Pillow opens 16-bit PGM and some 16-bit PNGs) are read
    as 0..65535: v -> round(v / 257), so an 8-bit value stored as 16 bits (v * 257) comes
    back exactly; values outside 0..65535 clip. Mode F (float TIFF) is read as 0..1, the
    usual convention for float images (Pillow's own convert would read it as 0..255 and
    make a [0, 1] image black); it is clipped to [0, 1]. A mode that cannot be converted
    (or a float image with NaN/inf) raises ValueError, which decode names with the file.
    """
    if image.mode == "RGB":
        return image
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        if image.mode == "F":
            scaled = np.asarray(image, dtype=np.float64) * 255.0
            if not np.isfinite(scaled).all():
                raise ValueError("float image with NaN or infinite pixels")
        else:
            scaled = np.asarray(image, dtype=np.float64) / 257.0
        grey = np.clip(np.round(scaled), 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    return image.convert("RGB")


def decode(path) -> Decoded:
    """Read an image file fully; any failure is an ImageError naming the file and the reason."""
    path, name = Path(path), display(path)
    try:
        f = open_regular(path)
        empty = os.fstat(f.fileno()).st_size == 0
    except OSError as e:  # missing, no permission, a symlink loop, a FIFO: never read
        raise ImageError(f"{name}: {why(e)}") from None
    return decode_stream(f, name, empty)


def decode_bytes(data: bytes, name: str = "<encoded image>") -> Decoded:
    """Encoded bytes, decoded exactly as `decode` decodes a file holding them."""
    return decode_stream(_BytesIO(data), name, not data)


def decode_stream(f, name: str, empty: bool = False) -> Decoded:
    """The one decoder behind `decode` and `decode_bytes`: the fast JPEG path when it
    applies (Pillow's pixels, tested), else Pillow, which also judges every damaged file.
    Closes `f`."""
    with _quiet():  # EXIF warnings, as below
        fast = codec.decode_jpeg(f, MAX_PIXELS)  # None: not a plain JPEG; Pillow decides
    if fast is not None:
        f.close()
        return Decoded(fast[0], valid_orientation(fast[1]), "JPEG")
    f.seek(0)
    try:
        with f, _quiet(), Image.open(f) as im:
            if im.width * im.height > MAX_PIXELS:
                raise ImageError(f"{name}: image too large ({im.width}x{im.height} pixels, "
                                 f"limit {MAX_PIXELS}): refusing a possible decompression bomb")
            orientation = _orientation(im)
            fmt = im.format
            im.load()
            try:
                rgb = np.asarray(to_rgb(im))
            except ValueError as e:
                raise ImageError(f"{name}: cannot convert mode {im.mode} to RGB "
                                 f"({_reason(e)})") from None
    except ImageError:
        raise
    except Image.DecompressionBombError as e:
        raise ImageError(f"{name}: {e}") from None
    except (OSError, SyntaxError, ValueError) as e:
        reason = "empty file" if empty else _reason(e)
        raise ImageError(f"{name}: cannot decode image ({reason})") from None
    return Decoded(np.ascontiguousarray(rgb), orientation, fmt)


@contextlib.contextmanager
def _quiet():
    """Pillow warns about odd metadata while opening: it is dropped (see _orientation), and
    a warning would be a second line on the CLI's stderr. (catch_warnings(action=) is 3.11+.)"""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _orientation(image: Image.Image) -> int | None:
    """The EXIF orientation to carry to the output: an int 2..8, else None.

    Read once, here, so encoders only ever see a valid value: a tag of the wrong type or out
    of range (stored as ASCII, -3, 70000, a rational, a float, bytes: about one JPEG in 750
    with damaged EXIF) is dropped, and the pixels stay as stored. 1 means "as stored" too.
    EXIF parsing of damaged bytes can raise almost anything; metadata never fails a decode.
    """
    try:
        value = image.getexif().get(ORIENTATION_TAG)
    except Exception:  # noqa: BLE001 - damaged metadata is ignored, see above
        return None
    return valid_orientation(value)


def valid_orientation(value) -> int | None:
    """An EXIF orientation tag's value if it is an int 2..8, else None (see _orientation)."""
    return value if type(value) is int and 2 <= value <= 8 else None


def _reason(e: Exception) -> str:
    if isinstance(e, UnidentifiedImageError):  # its text names our file object, not the file
        return "not an image format Pillow can read"
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    return text.replace(str(Path.cwd()) + os.sep, "")


def load_rgb(image) -> np.ndarray:
    """Path, PIL image or array -> HxWx3 uint8 RGB array."""
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise ValueError(f"expected a uint8 array, got {image.dtype}")
        if image.ndim == 2:
            return np.repeat(image[..., None], 3, axis=2)
        if image.ndim == 3 and image.shape[2] == 3:
            return image
        if image.ndim == 3 and image.shape[2] == 4:
            return np.asarray(to_rgb(Image.fromarray(image, "RGBA")))
        raise ValueError(f"expected an HxW, HxWx3 or HxWx4 array, got shape {image.shape}")
    if isinstance(image, Image.Image):
        return np.asarray(to_rgb(image))
    return decode(image).rgb


def encode_bytes(rgb: np.ndarray, fmt: str, quality=DEFAULT_JPEG_QUALITY, orientation=None) -> bytes:
    """Encode to bytes in memory: fixed settings so the same pixels give the same bytes."""
    check_encodable(rgb.shape, fmt)
    if fmt == "JPEG":
        data = codec.encode_jpeg(rgb, quality, orientation)  # the same bytes, faster
        if data is not None:
            return data
    image = Image.fromarray(rgb, "RGB")
    kwargs = {}
    if fmt == "JPEG":
        # 4:2:0 like the ImageNet originals; optimize off (a fixed Huffman table is faster;
        # tests/test_codec.py pins the bytes).
        kwargs = dict(quality=quality, subsampling=2)
    elif fmt == "WEBP":
        kwargs = dict(quality=quality)
    if orientation and fmt in ("JPEG", "PNG", "WEBP", "TIFF"):
        kwargs["exif"] = codec.exif_bytes(orientation)
    buffer = _BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def encode_filtered(compiled, rgb: np.ndarray, strength: float, fmt: str, quality: int,
                    orientation=None, out=None) -> bytes:
    """The bytes `instafilters build` writes for one output: the compiled filter at
    `strength`, then `encode_bytes`. The build, its dry run and the exact on-the-fly
    transforms all call this, so they cannot drift apart."""
    return encode_bytes(compiled(rgb, strength, out=out), fmt, quality, orientation)


def format_for(path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in _FORMATS:
        raise ImageError(f"{display(path)}: unknown output extension {suffix!r}; use one of "
                         f"{', '.join(sorted(_FORMATS))}")
    return _FORMATS[suffix]


def _file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_FILE_MODE = _file_mode()
_O_BINARY = getattr(os, "O_BINARY", 0)  # Windows: no newline translation


def atomic_write_bytes(path, data: bytes, temp_suffix: str | None = None) -> None:
    """Write to a temporary file beside `path`, then rename: readers never see half a file.

    `temp_suffix` (default: the extension of `path`) names the temporary; the dataset build
    passes one ending in ".tmp", so a temporary left by `kill -9` is never taken for an image
    by an ImageFolder-style loader. The folder is made only when the first write into it
    fails for want of it (asking every time costs a system call per output)."""
    folder, name = os.path.split(os.fspath(path))
    folder = folder or os.curdir
    suffix = os.path.splitext(name)[1] if temp_suffix is None else temp_suffix
    try:
        fd, tmp = _create_temporary(folder, name, suffix)
    except FileNotFoundError:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = _create_temporary(folder, name, suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _create_temporary(folder: str, name: str, suffix: str):
    """(fd, path) of a new file `TEMP_PREFIX<name>-<pid><suffix>` in `folder`, created with
    O_EXCL (no other process can own it) and the usual permissions: a third cheaper than
    mkstemp + fchmod on tmpfs (0.040 vs 0.062 ms). mkstemp remains for a name that is taken
    (a killed run's leftover, another host's pid on a shared file system) or too long."""
    tmp = os.path.join(folder, f"{TEMP_PREFIX}{name}-{os.getpid()}{suffix}")
    try:
        return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_BINARY, 0o666), tmp
    except OSError as e:
        if not isinstance(e, FileExistsError) and e.errno != errno.ENAMETOOLONG:
            raise
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=suffix, dir=folder)
    os.fchmod(fd, _FILE_MODE)  # mkstemp makes 0600; outputs should read like any file
    return fd, tmp


def save(rgb: np.ndarray, path, quality=DEFAULT_JPEG_QUALITY, orientation=None) -> None:
    """Encode by the extension of `path` and write atomically; errors name the file."""
    fmt = format_for(path)
    try:
        data = encode_bytes(rgb, fmt, quality, orientation)
    except ValueError as e:
        raise ImageError(f"{display(path)}: cannot encode ({e})") from None
    try:
        atomic_write_bytes(path, data)
    except OSError as e:
        raise ImageError(f"{display(path)}: cannot write ({e.strerror or e})") from None
