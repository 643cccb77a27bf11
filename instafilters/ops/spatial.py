"""Spatial maps (vignettes, gradients): functions of pixel position only, so the compiler
computes them once per image size and caches them.

Positions are normalised to the image: u, v in [0, 1] at pixel centres, so a recipe looks the
same at any resolution and aspect ratio.
"""
from __future__ import annotations

import numpy as np


def _grid(height, width):
    v = (np.arange(height, dtype=np.float64) + 0.5) / height
    u = (np.arange(width, dtype=np.float64) + 0.5) / width
    return u[None, :], v[:, None]


def radial_distance(height, width, center=(0.5, 0.5), shape="ellipse"):
    """Distance from `center` (u, v). Ellipse: 1 at the image corners, the ellipse follows
    the aspect ratio. Circle: in units of half the diagonal, round whatever the aspect."""
    u, v = _grid(height, width)
    du, dv = u - center[0], v - center[1]
    if shape == "circle":
        diag = np.hypot(width, height)
        return np.hypot(du * width, dv * height) / (0.5 * diag)
    return np.hypot(du, dv) / np.hypot(0.5, 0.5)


def linear_position(height, width, angle=90.0):
    """Position along direction `angle` (degrees, 0 = left to right, 90 = top to bottom),
    0 at the first corner the line meets and 1 at the last."""
    u, v = _grid(height, width)
    c, s = np.cos(np.radians(angle)), np.sin(np.radians(angle))
    span = abs(c) + abs(s)
    return 0.5 + ((u - 0.5) * c + (v - 0.5) * s) / span


def _smoothstep(edge0, edge1, x):
    t = np.clip((x - edge0) / max(edge1 - edge0, 1e-9), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def vignette_mask(height, width, center=(0.5, 0.5), radius=0.5, softness=0.5, strength=1.0,
                  shape="ellipse", invert=False):
    """Weight in [0, strength]: 0 inside `radius`, rising smoothly over `softness` to full
    strength (or the reverse with `invert`, for a central glow)."""
    return vignette_weight(radial_distance(height, width, center, shape), radius, softness,
                           strength, invert)


def vignette_weight(distance, radius=0.5, softness=0.5, strength=1.0, invert=False):
    """The vignette's weight as a function of radial distance alone (fused.py tabulates it)."""
    t = _smoothstep(radius, radius + softness, distance)
    if invert:
        t = 1.0 - t
    return (strength * t).astype(np.float32)


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
