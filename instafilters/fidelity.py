"""Colour fidelity: CIEDE2000 between two RGB images, in numpy only.

sRGB (D65) -> CIE Lab -> CIEDE2000 (Sharma, Wu and Dalal 2005), vectorised, so the core
install needs no scikit-image; tests/test_fidelity.py checks it against
`skimage.color.deltaE_ciede2000` and against the published test pairs.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# sRGB -> XYZ (D65) scaled by the D65 white point of the 2 degree observer, as scikit-image
# uses; XYZ/white -> Lab is linear in f(XYZ/white).
_RGB_TO_XYZ_W = np.array([[0.412453, 0.357580, 0.180423],
                          [0.212671, 0.715160, 0.072169],
                          [0.019334, 0.119193, 0.950227]]) / np.array([0.95047, 1.0, 1.08883])[:, None]
_F_TO_LAB = np.array([[0.0, 116.0, 0.0], [500.0, -500.0, 0.0], [0.0, 200.0, -200.0]])
_EPS = (6.0 / 29.0) ** 3
_KAPPA = 3 * (6.0 / 29.0) ** 2  # f is xyz / _KAPPA + 4/29 below _EPS


def srgb_to_linear(rgb):
    """sRGB values in [0, 1] -> linear light."""
    rgb = np.asarray(rgb, dtype=np.float64)
    return np.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)


def _f(xyz):
    return np.where(xyz > _EPS, np.cbrt(np.maximum(xyz, _EPS)), xyz / _KAPPA + 4.0 / 29.0)


def _lab_of_f(f):
    return np.stack([116.0 * f[..., 1] - 16.0,
                     500.0 * (f[..., 0] - f[..., 1]),
                     200.0 * (f[..., 1] - f[..., 2])], axis=-1)


def rgb_to_lab(rgb):
    """sRGB in [0, 1] (any shape ending in 3) -> CIE Lab (D65), float64.

    uint8 input is scaled by 1/255 first.
    """
    rgb = np.asarray(rgb)
    if rgb.dtype == np.uint8:
        rgb = rgb / 255.0
    return _lab_of_f(_f(srgb_to_linear(rgb) @ _RGB_TO_XYZ_W.T))


def rgb_to_lab_grad(rgb):
    """`rgb_to_lab` of float sRGB (N, 3), clipped to [0, 1], and d Lab / d RGB (N, 3, 3)."""
    x = np.clip(rgb, 0.0, 1.0)
    high = x > 0.04045
    lin = srgb_to_linear(x)
    dlin = np.where(high, 2.4 / 1.055 * ((x + 0.055) / 1.055) ** 1.4, 1 / 12.92)
    xyz = lin @ _RGB_TO_XYZ_W.T
    f = _f(xyz)
    df = np.where(xyz > _EPS, 1.0 / (3.0 * np.maximum(f, 1e-6) ** 2), 1.0 / _KAPPA)
    jac = _F_TO_LAB[None] * df[:, None, :] @ _RGB_TO_XYZ_W  # d Lab / d linear
    return _lab_of_f(f), jac * dlin[:, None, :]


def lightness_scale(lightness):
    """CIEDE2000's S_L: how much a lightness difference counts at this lightness."""
    return 1.0 + 0.015 * (lightness - 50.0) ** 2 / np.sqrt(20.0 + (lightness - 50.0) ** 2)


def ciede2000(lab1, lab2, kl=1.0, kc=1.0, kh=1.0):
    """CIEDE2000 colour difference of Lab arrays (last axis L, a, b), element-wise."""
    lab1 = np.asarray(lab1, dtype=np.float64)
    lab2 = np.asarray(lab2, dtype=np.float64)
    l1, a1, b1 = np.moveaxis(lab1, -1, 0)
    l2, a2, b2 = np.moveaxis(lab2, -1, 0)
    c_bar7 = ((np.hypot(a1, b1) + np.hypot(a2, b2)) / 2.0) ** 7
    g = 0.5 * (1.0 - np.sqrt(c_bar7 / (c_bar7 + 25.0 ** 7)))
    a1p, a2p = (1.0 + g) * a1, (1.0 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360.0
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360.0
    h1p = np.where(c1p == 0, 0.0, h1p)
    h2p = np.where(c2p == 0, 0.0, h2p)

    dl = l2 - l1
    dc = c2p - c1p
    dh = h2p - h1p
    dh = np.where(dh > 180.0, dh - 360.0, np.where(dh < -180.0, dh + 360.0, dh))
    dh = np.where(c1p * c2p == 0, 0.0, dh)
    dhh = 2.0 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh) / 2.0)

    l_bar = (l1 + l2) / 2.0
    c_bar_p = (c1p + c2p) / 2.0
    h_sum = h1p + h2p
    h_bar = np.where(np.abs(h1p - h2p) > 180.0,
                     np.where(h_sum < 360.0, (h_sum + 360.0) / 2.0, (h_sum - 360.0) / 2.0),
                     h_sum / 2.0)
    h_bar = np.where(c1p * c2p == 0, h_sum, h_bar)
    t = (1.0 - 0.17 * np.cos(np.radians(h_bar - 30.0)) + 0.24 * np.cos(np.radians(2 * h_bar))
         + 0.32 * np.cos(np.radians(3 * h_bar + 6.0)) - 0.20 * np.cos(np.radians(4 * h_bar - 63.0)))
    d_theta = 30.0 * np.exp(-(((h_bar - 275.0) / 25.0) ** 2))
    c_bar_p7 = c_bar_p ** 7
    rc = 2.0 * np.sqrt(c_bar_p7 / (c_bar_p7 + 25.0 ** 7))
    sl = lightness_scale(l_bar)
    sc = 1.0 + 0.045 * c_bar_p
    sh = 1.0 + 0.015 * c_bar_p * t
    rt = -np.sin(np.radians(2.0 * d_theta)) * rc
    tl, tc, th = dl / (kl * sl), dc / (kc * sc), dhh / (kh * sh)
    return np.sqrt(tl ** 2 + tc ** 2 + th ** 2 + rt * tc * th)


def delta_e(image1, image2):
    """Per-pixel CIEDE2000 between two same-shape RGB uint8 images (HxW float64)."""
    a, b = np.asarray(image1), np.asarray(image2)
    if a.shape != b.shape or a.ndim != 3 or a.shape[-1] != 3:
        raise ValueError(f"expected two HxWx3 images of the same size, got {a.shape} and {b.shape}")
    return ciede2000(rgb_to_lab(a), rgb_to_lab(b))


@dataclass(frozen=True)
class Fidelity:
    """Mean and 95th percentile CIEDE2000 of one image pair."""
    mean: float
    p95: float

    def __str__(self):
        return f"dE00 mean {self.mean:.2f}, p95 {self.p95:.2f}"

    @classmethod
    def of(cls, d) -> "Fidelity":
        """The summary of per-pixel CIEDE2000 values `d`."""
        return cls(float(d.mean()), float(np.percentile(d, 95)))


def fidelity(image1, image2) -> Fidelity:
    """Mean and 95th percentile CIEDE2000 between two RGB uint8 images."""
    return Fidelity.of(delta_e(image1, image2))
