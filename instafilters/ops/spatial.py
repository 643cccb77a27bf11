"""Spatial maps (vignettes, gradients): functions of pixel position only, so the compiler
computes them once per image size and caches them.

Positions are normalised to the image: u, v in [0, 1] at pixel centres, so a recipe looks the
same at any resolution and aspect ratio. The fitter (instafilters.fit) evaluates the same
functions at sample positions, with the derivatives given here beside them.
"""
from __future__ import annotations

import numpy as np


_HALF_DIAGONAL = np.hypot(0.5, 0.5)


def pixel_position(height, width, rows, cols):
    """Normalised (u, v) of pixel `rows`, `cols` (any broadcastable indices, fractional
    allowed) in a height x width image: pixel centres, 0..1 across the image."""
    u = (np.asarray(cols, dtype=np.float64) + 0.5) / width
    v = (np.asarray(rows, dtype=np.float64) + 0.5) / height
    return u, v


def _grid(height, width):
    return pixel_position(height, width, np.arange(height)[:, None], np.arange(width)[None, :])


def ellipse_distance(u, v, center=(0.5, 0.5)):
    """Distance of (u, v) from `center`: 1 at the image corners (the ellipse follows the
    aspect ratio)."""
    return np.hypot(u - center[0], v - center[1]) / _HALF_DIAGONAL


def ellipse_distance_grad(u, v, center=(0.5, 0.5)):
    """`ellipse_distance` and its derivatives with respect to the centre's u and v."""
    du, dv = u - center[0], v - center[1]
    d = ellipse_distance(u, v, center)
    safe = np.maximum(d, 1e-9) * _HALF_DIAGONAL ** 2
    return d, -du / safe, -dv / safe


def radial_distance(height, width, center=(0.5, 0.5), shape="ellipse"):
    """Distance from `center` (u, v). Ellipse: 1 at the image corners, the ellipse follows
    the aspect ratio. Circle: in units of half the diagonal, round whatever the aspect."""
    u, v = _grid(height, width)
    if shape == "circle":
        du, dv = u - center[0], v - center[1]
        diag = np.hypot(width, height)
        return np.hypot(du * width, dv * height) / (0.5 * diag)
    return ellipse_distance(u, v, center)


def linear_position(height, width, angle=90.0):
    """Position along direction `angle` (degrees, 0 = left to right, 90 = top to bottom),
    0 at the first corner the line meets and 1 at the last."""
    u, v = _grid(height, width)
    c, s = np.cos(np.radians(angle)), np.sin(np.radians(angle))
    span = abs(c) + abs(s)
    return 0.5 + ((u - 0.5) * c + (v - 0.5) * s) / span


def _falloff_position(d, radius, softness):
    """(d - radius) / softness: 0 at `radius`, 1 where the falloff ends, and the span. The
    span is (radius + softness) - radius, as the compiled masks have always computed it."""
    span = max((radius + softness) - radius, 1e-9)
    return (d - radius) / span, span


def falloff(d, radius, softness, invert=False):
    """Weight in [0, 1] at distance `d`: 0 inside `radius`, rising smoothly (smoothstep)
    over `softness` to 1 (or the reverse with `invert`, for a central glow)."""
    t = np.clip(_falloff_position(d, radius, softness)[0], 0.0, 1.0)
    w = t * t * (3 - 2 * t)
    return 1.0 - w if invert else w


def falloff_grad(d, radius, softness, invert=False):
    """`falloff` and its derivatives with respect to `radius`, `softness` and `d`."""
    t_raw, span = _falloff_position(d, radius, softness)
    t = np.clip(t_raw, 0.0, 1.0)
    w = t * t * (3 - 2 * t)
    slope = 6 * t * (1 - t) * ((t_raw > 0) & (t_raw < 1)) / span  # d w / d d
    if invert:
        w, slope = 1.0 - w, -slope
    return w, -slope, -slope * t_raw, slope


def vignette_mask(height, width, center=(0.5, 0.5), radius=0.5, softness=0.5, strength=1.0,
                  shape="ellipse", invert=False):
    """Weight in [0, strength]: 0 inside `radius`, rising smoothly over `softness` to full
    strength (or the reverse with `invert`, for a central glow)."""
    return vignette_weight(radial_distance(height, width, center, shape), radius, softness,
                           strength, invert)


def vignette_weight(distance, radius=0.5, softness=0.5, strength=1.0, invert=False):
    """The vignette's weight as a function of radial distance alone (fused.py tabulates it)."""
    return (strength * falloff(distance, radius, softness, invert)).astype(np.float32)


def gradient_weights(position, stops):
    """Per-stop hat weights of a piecewise-linear gradient at `position` (HxW array).

    The gradient colour is sum_k w_k * colour_k; clamped to the first/last stop outside.
    """
    pos = np.clip(position, stops[0], stops[-1])
    weights = []
    for k, s in enumerate(stops):
        w = np.zeros_like(pos)
        if k > 0:
            prev = stops[k - 1]
            rising = (pos >= prev) & (pos <= s)
            w = np.where(rising, (pos - prev) / max(s - prev, 1e-9), w)
        if k < len(stops) - 1:
            nxt = stops[k + 1]
            falling = (pos >= s) & (pos <= nxt)
            w = np.where(falling, (nxt - pos) / max(nxt - s, 1e-9), w)
        if k == 0:
            w = np.where(pos <= s, 1.0, w)
        if k == len(stops) - 1:
            w = np.where(pos >= s, 1.0, w)
        weights.append(w.astype(np.float32))
    return weights
