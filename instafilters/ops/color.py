"""Colour matrices (compiled to one cv2.transform): the CSS Filter Effects definitions.

Each function returns a 3x3 matrix acting on column vectors (r, g, b); `apply_matrix`
applies a 3x4 (matrix | offset) to an image. Matrices compose by multiplication, which is
why consecutive matrix ops fuse into one.
"""
from __future__ import annotations

import numpy as np

# Rec. 709 luma weights as the CSS filter spec rounds them.
_LUMA = np.array([0.2126, 0.7152, 0.0722])


def saturation_matrix(s):
    """CSS saturate(s): 0 is grey, 1 identity, above 1 more saturated."""
    w = np.array([0.213, 0.715, 0.072])
    return np.array([
        [w[0] + (1 - w[0]) * s, w[1] - w[1] * s, w[2] - w[2] * s],
        [w[0] - w[0] * s, w[1] + (1 - w[1]) * s, w[2] - w[2] * s],
        [w[0] - w[0] * s, w[1] - w[1] * s, w[2] + (1 - w[2]) * s],
    ])


def hue_rotate_matrix(degrees):
    """CSS hue-rotate(): rotate hue around the luma axis."""
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    return np.array([
        [0.213 + c * 0.787 - s * 0.213, 0.715 - c * 0.715 - s * 0.715, 0.072 - c * 0.072 + s * 0.928],
        [0.213 - c * 0.213 + s * 0.143, 0.715 + c * 0.285 + s * 0.140, 0.072 - c * 0.072 - s * 0.283],
        [0.213 - c * 0.213 - s * 0.787, 0.715 - c * 0.715 + s * 0.715, 0.072 + c * 0.928 + s * 0.072],
    ])


def grayscale_matrix(amount=1.0):
    """CSS grayscale(amount): 1 is full Rec. 709 luma grey."""
    a = 1.0 - amount
    return np.array([
        [_LUMA[0] + (1 - _LUMA[0]) * a, _LUMA[1] - _LUMA[1] * a, _LUMA[2] - _LUMA[2] * a],
        [_LUMA[0] - _LUMA[0] * a, _LUMA[1] + (1 - _LUMA[1]) * a, _LUMA[2] - _LUMA[2] * a],
        [_LUMA[0] - _LUMA[0] * a, _LUMA[1] - _LUMA[1] * a, _LUMA[2] + (1 - _LUMA[2]) * a],
    ])


def sepia_matrix(amount=1.0):
    """CSS sepia(amount)."""
    a = 1.0 - amount
    return np.array([
        [0.393 + 0.607 * a, 0.769 - 0.769 * a, 0.189 - 0.189 * a],
        [0.349 - 0.349 * a, 0.686 + 0.314 * a, 0.168 - 0.168 * a],
        [0.272 - 0.272 * a, 0.534 - 0.534 * a, 0.131 + 0.869 * a],
    ])


def apply_matrix(x, matrix, offset=(0.0, 0.0, 0.0)):
    """out = M @ rgb + offset per pixel (offset in [0, 1] units). No clipping: see compile."""
    m = np.asarray(matrix, dtype=np.float32)
    return (np.asarray(x, dtype=np.float32) @ m.T + np.asarray(offset, dtype=np.float32))
