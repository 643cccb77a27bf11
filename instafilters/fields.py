"""Recipe field values: one parser per kind of value, each returning the parsed value or
raising Invalid (the recipe loader adds the file, filter, op and field).

Every number of a recipe is read by `number`, names and aliases by `slug`: one place
each, so no field can let NaN or a newline through.
"""
from __future__ import annotations

import re
from typing import Mapping

_SLUG = re.compile(r"\A[a-z0-9][a-z0-9_-]{0,63}\Z")  # \Z, not $: "evil\n" matched "^...$"
MAX_KNOTS = 16


class Invalid(ValueError):
    """Raised by a field parser; the caller adds file/filter/op/field context."""


def show(value, quote=True, limit=60) -> str:
    """A value for an error message, cut short: a huge value must not make a huge line."""
    text = repr(value) if quote else str(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


# ---------------------------------------------------------------- field parsers
def number(lo, hi):
    """Every number of a recipe is read here: finite and in [lo, hi] (both finite), else an
    error. Written as one chained comparison because NaN compares false with everything:
    `not lo <= nan <= hi` refuses it, where `nan < lo or nan > hi` let it through."""
    def parse(value):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Invalid(f"expected a number, got {show(value)}")
        if not lo <= value <= hi:
            raise Invalid(f"expected a number in [{lo}, {hi}], got {show(value)}")
        return float(value)
    return parse


def per_channel(lo, hi):
    """A number, or [r, g, b] numbers: returned as a length-3 tuple."""
    scalar = number(lo, hi)

    def parse(value):
        if isinstance(value, (list, tuple)):
            if len(value) != 3:
                raise Invalid(f"expected a number or [r, g, b], got {len(value)} values")
            return tuple(scalar(v) for v in value)
        return (scalar(value),) * 3
    return parse


def choice(*options):
    def parse(value):
        if value not in options:
            raise Invalid(f"expected one of {', '.join(map(str, options))}, got {show(value)}")
        return value
    return parse


def boolean(value):
    if not isinstance(value, bool):
        raise Invalid(f"expected true or false, got {show(value)}")
    return value


def color(value):
    """'#rrggbb' or [r, g, b] in 0-255; returned as floats in [0, 1]."""
    if isinstance(value, str) and re.fullmatch(r"#[0-9a-fA-F]{6}", value):
        return tuple(int(value[i:i + 2], 16) / 255.0 for i in (1, 3, 5))
    if isinstance(value, (list, tuple)) and len(value) == 3:
        return tuple(number(0, 255)(v) / 255.0 for v in value)
    raise Invalid(f"expected '#rrggbb' or [r, g, b] in 0-255, got {show(value)}")


def _pairs(value, first, second, many: str, one: str) -> tuple:
    """2..MAX_KNOTS [a, b] pairs (curve knots, gradient stops), a read by `first` and b by
    `second`; `many` and `one` word the errors for a bad list and a bad pair."""
    if not isinstance(value, (list, tuple)) or not 2 <= len(value) <= MAX_KNOTS:
        raise Invalid(f"{many}, got {show(value)}")
    pairs = []
    for p in value:
        if not isinstance(p, (list, tuple)) or len(p) != 2:
            raise Invalid(f"expected {one}, got {show(p)}")
        pairs.append((first(p[0]), second(p[1])))
    return tuple(pairs)


def points(value):
    """Curve knots: 2..16 [in, out] pairs in 0-255 with strictly increasing inputs."""
    byte = number(0, 255)
    pts = _pairs(value, byte, byte, f"expected 2 to {MAX_KNOTS} [in, out] pairs",
                 "an [in, out] pair")
    if any(b[0] <= a[0] for a, b in zip(pts, pts[1:])):
        raise Invalid("knot inputs must be strictly increasing")
    return pts


def _vector(names: str, lo, hi):
    """A parser of a fixed-length list of numbers in [lo, hi]; `names` is how an error
    shows the expected shape, e.g. '[x, y]'."""
    size = names.count(",") + 1

    def parse(value):
        if not isinstance(value, (list, tuple)) or len(value) != size:
            raise Invalid(f"expected {names}, got {show(value)}")
        return tuple(number(lo, hi)(v) for v in value)
    return parse


def vec2(lo, hi):
    return _vector("[x, y]", lo, hi)


def matrix3(value):
    if (not isinstance(value, (list, tuple)) or len(value) != 3
            or any(not isinstance(r, (list, tuple)) or len(r) != 3 for r in value)):
        raise Invalid(f"expected a 3x3 list of rows, got {show(value)}")
    return tuple(tuple(number(-16, 16)(v) for v in row) for row in value)


def vec3(lo, hi):
    return _vector("[r, g, b]", lo, hi)


GRADIENT_FIELDS = {
    "type": (choice("linear", "radial"), "radial"),
    "stops": (None, None),  # parsed by gradient
    "angle": (number(-360, 360), 90.0),
    "center": (vec2(-1, 2), (0.5, 0.5)),
    "radius": (number(0.01, 4), 1.0),
    "shape": (choice("ellipse", "circle"), "ellipse"),
}


def gradient(value):
    if not isinstance(value, Mapping):
        raise Invalid(f"expected a mapping with type and stops, got {show(value)}")
    unknown = set(value) - set(GRADIENT_FIELDS)
    if unknown:
        raise Invalid(f"unknown gradient field {show(sorted(map(str, unknown))[0])}")
    parsed = _pairs(value.get("stops"), number(0, 1), color,
                    f"gradient needs 2 to {MAX_KNOTS} stops [position, colour]",
                    "a [position, colour] stop")
    if any(b[0] < a[0] for a, b in zip(parsed, parsed[1:])):
        raise Invalid("gradient stop positions must be increasing")
    out = {k: (parser(value[k]) if k in value else default)
           for k, (parser, default) in GRADIENT_FIELDS.items() if k != "stops"}
    out["stops"] = parsed
    return out


# ---------------------------------------------------------------- filter metadata
def slug(value):
    """Names and aliases become folder names and manifest fields: a slug, nothing else."""
    if not isinstance(value, str) or not _SLUG.fullmatch(value):
        raise Invalid(f"expected a lowercase slug like 'toaster' (a-z, 0-9, '-', '_'; at "
                      f"most 64), got {show(value)}")
    return value


def file_name(value):
    """A calibration reference: a plain file name, read from the calibration folder."""
    if (not isinstance(value, str) or value in ("", ".", "..")
            or any(c in "/\\" or ord(c) < 32 for c in value)):
        raise Invalid(f"expected a plain file name, got {show(value)}")
    return value


def frame(value):
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(type(v) is int and 1 <= v <= 65535 for v in value)):
        raise Invalid(f"expected [height, width] in pixels, got {show(value)}")
    return [int(v) for v in value]


CALIBRATION_FIELDS = {"reference": file_name, "de_mean": number(0, 100),
                      "de_p95": number(0, 100), "frame": frame}


def calibration(value):
    """What `fit` measured: reference file, CIEDE2000 mean and p95, and the frame."""
    if not isinstance(value, Mapping):
        raise Invalid(f"expected a mapping, got {show(value)}")
    unknown = sorted(map(str, set(value) - set(CALIBRATION_FIELDS)))
    if unknown:
        raise Invalid(f"unknown calibration field {show(unknown[0])}; known: "
                      f"{', '.join(CALIBRATION_FIELDS)}")
    return {k: CALIBRATION_FIELDS[k](v) for k, v in value.items()}


def aliases(value):
    if not isinstance(value, list):
        raise Invalid(f"expected a list of names, got {show(value)}")
    return tuple(slug(a) for a in value)
