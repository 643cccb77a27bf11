"""W3C Compositing Level 1 separable blend modes, B(cb, cs) with backdrop cb and source cs.

https://www.w3.org/TR/compositing-1/#blending ; every mode is per channel, so a blend with a
solid colour compiles to a 1-D LUT.
"""
from __future__ import annotations

import numpy as np


def _soft_light_d(cb):
    return np.where(cb <= 0.25, ((16 * cb - 12) * cb + 4) * cb, np.sqrt(cb))


def _hard_light(cb, cs):
    return np.where(cs <= 0.5, cb * 2 * cs, _screen(cb, 2 * cs - 1))


def _screen(cb, cs):
    return cb + cs - cb * cs


def _color_dodge(cb, cs):
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.minimum(1.0, cb / np.maximum(1.0 - cs, 1e-12))
    return np.where(cb == 0, 0.0, np.where(cs >= 1, 1.0, q))


def _color_burn(cb, cs):
    with np.errstate(divide="ignore", invalid="ignore"):
        q = 1.0 - np.minimum(1.0, (1.0 - cb) / np.maximum(cs, 1e-12))
    return np.where(cb >= 1, 1.0, np.where(cs <= 0, 0.0, q))


BLEND_MODES = {
    "normal": lambda cb, cs: cs + 0 * cb,
    "multiply": lambda cb, cs: cb * cs,
    "screen": _screen,
    "overlay": lambda cb, cs: _hard_light(cs, cb),
    "darken": np.minimum,
    "lighten": np.maximum,
    "color-dodge": _color_dodge,
    "color-burn": _color_burn,
    "hard-light": _hard_light,
    "soft-light": lambda cb, cs: np.where(
        cs <= 0.5, cb - (1 - 2 * cs) * cb * (1 - cb), cb + (2 * cs - 1) * (_soft_light_d(cb) - cb)),
    "difference": lambda cb, cs: np.abs(cb - cs),
    "exclusion": lambda cb, cs: cb + cs - 2 * cb * cs,
}

# Modes whose result is affine in the source colour for a fixed backdrop: blending with a
# gradient then equals the gradient of the blends, which compiles to LUTs + weight maps.
AFFINE_IN_SOURCE = frozenset({"normal", "multiply", "screen", "overlay", "exclusion"})


def blend(cb, cs, mode):
    """B(cb, cs) for a W3C separable mode; arrays broadcast, values in [0, 1]."""
    cb = np.clip(np.asarray(cb, dtype=np.float64), 0, 1)
    cs = np.clip(np.asarray(cs, dtype=np.float64), 0, 1)
    return BLEND_MODES[mode](cb, cs)


def composite(cb, cs, mode, opacity=1.0):
    """Source over an opaque backdrop: (1 - opacity) * cb + opacity * B(cb, cs)."""
    cb = np.clip(np.asarray(cb, dtype=np.float64), 0, 1)
    return ((1 - opacity) * cb + opacity * blend(cb, cs, mode)).astype(np.float32)
