"""Separable tone ops: each channel maps through a 1-D function (compiled to one cv2.LUT)."""
from __future__ import annotations

import numpy as np


def monotone_spline(xs, ys):
    """Return f(x) interpolating the knots with monotone cubic Hermite (Fritsch-Carlson PCHIP).

    Same slopes as scipy.interpolate.PchipInterpolator (tests compare the two); written here
    because it is 20 lines and scipy would be a heavy core dependency for it. Monotone data
    gives a monotone curve with no overshoot; outside the knots the curve is flat.
    """
    x = np.asarray(xs, dtype=np.float64)
    y = np.asarray(ys, dtype=np.float64)
    h = np.diff(x)
    delta = np.diff(y) / h
    n = len(x)
    d = np.zeros(n)
    if n == 2:
        d[:] = delta[0]
    else:
        w1 = 2 * h[1:] + h[:-1]
        w2 = h[1:] + 2 * h[:-1]
        same_sign = delta[:-1] * delta[1:] > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            harmonic = (w1 + w2) / (w1 / delta[:-1] + w2 / delta[1:])
        d[1:-1] = np.where(same_sign, harmonic, 0.0)
        d[0] = _edge_slope(h[0], h[1], delta[0], delta[1])
        d[-1] = _edge_slope(h[-1], h[-2], delta[-1], delta[-2])

    def f(values):
        v = np.clip(np.asarray(values, dtype=np.float64), x[0], x[-1])
        k = np.clip(np.searchsorted(x, v, side="right") - 1, 0, n - 2)
        t = (v - x[k]) / h[k]
        t2, t3 = t * t, t * t * t
        return ((2 * t3 - 3 * t2 + 1) * y[k] + (t3 - 2 * t2 + t) * h[k] * d[k]
                + (-2 * t3 + 3 * t2) * y[k + 1] + (t3 - t2) * h[k] * d[k + 1])

    return f


def _edge_slope(h0, h1, m0, m1):
    """One-sided three-point end slope, limited as in SciPy's PCHIP."""
    d = ((2 * h0 + h1) * m0 - h0 * m1) / (h0 + h1)
    if np.sign(d) != np.sign(m0):
        return 0.0
    if np.sign(m0) != np.sign(m1) and abs(d) > abs(3 * m0):
        return 3 * m0
    return d


def curve(x, points):
    """Photoshop-style curve: `points` are (input, output) pairs in 0-255, sorted by input."""
    pts = np.asarray(points, dtype=np.float64) / 255.0
    return monotone_spline(pts[:, 0], pts[:, 1])(x).astype(np.float32)


def levels(x, in_black=0.0, in_white=255.0, gamma=1.0, out_black=0.0, out_white=255.0):
    """Levels dialog: stretch [in_black, in_white] to [0, 1], apply gamma, then map to output."""
    ib, iw, g, ob, ow = (np.asarray(v, dtype=np.float64) for v in
                         (in_black, in_white, gamma, out_black, out_white))
    t = np.clip((np.asarray(x, dtype=np.float64) - ib / 255.0) / ((iw - ib) / 255.0), 0.0, 1.0)
    return ((t ** (1.0 / g)) * (ow - ob) / 255.0 + ob / 255.0).astype(np.float32)


def gamma(x, value):
    """Gamma as in a levels dialog: values above 1 brighten the midtones."""
    return (np.clip(np.asarray(x, dtype=np.float64), 0, 1) ** (1.0 / value)).astype(np.float32)


def brightness(x, amount):
    """CSS brightness(): multiply every channel by `amount`."""
    return (np.asarray(x, dtype=np.float32) * np.float32(amount))


def contrast(x, amount):
    """CSS contrast(): scale the distance from mid-grey by `amount`."""
    return ((np.asarray(x, dtype=np.float32) - 0.5) * np.float32(amount) + 0.5)
