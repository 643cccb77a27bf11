"""The kinds of stage a fitted recipe is made of, as data.

Each kind knows its parameters (initial values and bounds), its float surrogate with the
analytic Jacobian, its regulariser and the recipe op it becomes; `model.STAGES` names the
stages and orders them. Every kind is an existing recipe op, so a fit compiles like any
hand-written recipe.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import ops
from ..ops.spatial import ellipse_distance_grad, falloff_grad

KNOTS = np.array([0, 32, 64, 96, 128, 160, 192, 224, 255], dtype=np.float64)
VIGNETTE_KNOTS = np.array([0, 64, 128, 192, 255], dtype=np.float64)
# Steep curve segments after a rounding step (the matrix, the vignette blend) amplify it:
# these limits keep the compiled filter within 2 grey levels of the float reference.
MAX_SLOPE = 1.4
MIN_SOFTNESS = 0.35  # vignette falloff, in units of the centre-to-corner distance
MAX_EFFECT_SLOPE = 1.1
_GRID = np.linspace(0.0, 1.0, 256)
_IDENTITY_MATRIX = np.r_[np.eye(3).ravel(), 0, 0, 0]


def _tables_and_grads(y, knots):
    """Per-channel curves (ops.curve's PCHIP) through `knots` (x in 0-255, y in 0-1)
    sampled at 256 levels (256, 3), and their derivatives (256, 3, K) w.r.t. each knot."""
    y = y.reshape(3, len(knots))
    xs = knots / 255.0
    tables = np.stack([ops.monotone_spline(xs, y[c])(_GRID) for c in range(3)], axis=1)
    grads = np.empty((256, 3, len(knots)))
    eps = 1e-4
    for c in range(3):
        for k in range(len(knots)):
            yk = y[c].copy()
            yk[k] += eps
            grads[:, c, k] = (ops.monotone_spline(xs, yk)(_GRID) - tables[:, c]) / eps
    return tables, grads


def _lookup_grad(table, grads, x):
    """Linear interpolation of per-channel tables (256, 3) at float x (N, 3) in [0, 1], with
    the local slope (N, 3) and the derivatives w.r.t. the knots (N, 3, K) there."""
    f = np.clip(x, 0.0, 1.0) * 255.0
    i = np.minimum(f.astype(np.int64), 254)
    w = f - i
    ch = np.arange(3)
    lo, hi = table[i, ch], table[i + 1, ch]
    value = lo * (1 - w) + hi * w
    slope = (hi - lo) * 255.0
    gsel = grads[i, ch] * (1 - w)[..., None] + grads[i + 1, ch] * w[..., None]
    return value, slope, gsel


def _curves(x, y, knots, jac, start):
    """x through the curves `y`; the Jacobian chained and its own columns (from `start`)."""
    table, grads = _tables_and_grads(y, knots)
    x, slope, gsel = _lookup_grad(table, grads, x)
    if jac is not None:
        jac *= slope[:, :, None]
        k = len(knots)
        for c in range(3):
            jac[:, c, start + c * k:start + (c + 1) * k] += gsel[:, c]
    return x, jac


def _curve_residuals(y, knots, strength, max_slope):
    """Smooth, monotone, not steeper than `max_slope` (None: any), near identity."""
    y = y.reshape(3, len(knots))
    slope = np.diff(y, axis=1) / (np.diff(knots) / 255.0)
    res = [strength * 0.15 * np.diff(slope, axis=1).ravel(),
           strength * 3.0 * np.minimum(slope, 0).ravel()]
    if max_slope is not None:
        res.append(strength * 20.0 * np.maximum(slope - max_slope, 0).ravel())
    res.append(strength * 0.5 * (y - knots / 255.0).ravel())
    return res


def _curves_op(y, knots, digits):
    """{r, g, b: [[x, y], ...]} in 0-255, made non-decreasing (as the fit is, up to noise)."""
    y = y.reshape(3, len(knots))
    out = {}
    for i, c in enumerate("rgb"):
        ys = np.maximum.accumulate(np.clip(y[i], 0.0, 1.0) * 255.0)
        out[c] = [[int(x), round(float(v), digits)] for x, v in zip(knots, ys)]
    return out


@dataclass(frozen=True)
class Curves:
    """Per-channel monotone curves on KNOTS: a `curves` op."""
    max_slope: float | None = None  # curves after a rounding step must not be steep

    size = 3 * len(KNOTS)

    def bounds(self):
        """Initial values (identity), lower and upper bounds."""
        return np.tile(KNOTS / 255.0, 3), 0.0, 1.0

    def forward(self, v, x, pos, jac, start):
        return _curves(x, v, KNOTS, jac, start)

    def residuals(self, v, strength):
        return _curve_residuals(v, KNOTS, strength, self.max_slope)

    def op(self, v, digits):
        return {"op": "curves", **_curves_op(v, KNOTS, digits)}


@dataclass(frozen=True)
class Matrix:
    """A 3x3 colour matrix and offset: a `color_matrix` op."""
    size = 12

    def bounds(self):
        return (_IDENTITY_MATRIX.copy(), np.r_[np.full(9, -3.0), np.full(3, -1.0)],
                np.r_[np.full(9, 3.0), np.full(3, 1.0)])

    def forward(self, v, x, pos, jac, start):
        mat = v[:9].reshape(3, 3)
        raw = x @ mat.T + v[9:]
        if jac is not None:
            jac = np.einsum("ij,njp->nip", mat, jac)
            for i in range(3):
                jac[:, i, start + 3 * i:start + 3 * i + 3] = x
                jac[:, i, start + 9 + i] = 1.0
            jac *= ((raw > 0) & (raw < 1))[:, :, None]
        return np.clip(raw, 0.0, 1.0), jac

    def residuals(self, v, strength):
        return [strength * 0.5 * (v - _IDENTITY_MATRIX)]

    def op(self, v, digits):
        return {"op": "color_matrix",
                "matrix": [[round(float(x), 4) for x in row] for row in v[:9].reshape(3, 3)],
                "offset": [round(float(x) * 255.0, 2) for x in v[9:]]}


@dataclass(frozen=True)
class Vignette:
    """Curves on VIGNETTE_KNOTS blended in by a centred radial falloff: a `vignette` op with
    `curves` (tone-dependent darkening), or with `invert` a central glow.

    Parameters: radius, softness, centre u, v, then the curves."""
    start: float  # initial radius
    invert: bool = False

    size = 4 + 3 * len(VIGNETTE_KNOTS)

    def bounds(self):
        vid = np.tile(VIGNETTE_KNOTS / 255.0, 3)
        # centred: an off-centre fit would bake the framing of the reference in.
        # softness >= MIN_SOFTNESS: one saturated photo cannot tell a soft falloff from a
        # sharp one, and a sharp one draws a visible ring across skies.
        return (np.r_[self.start, 0.6, 0.5, 0.5, vid],
                np.r_[0.0, MIN_SOFTNESS, 0.5, 0.5, np.zeros(len(vid))],
                np.r_[1.2, 1.5, 0.5, 0.5, np.ones(len(vid))])

    def forward(self, v, x, pos, jac, start):
        d, dd_du, dd_dv = ellipse_distance_grad(pos[:, 0], pos[:, 1], (v[2], v[3]))
        mask, dm_dr, dm_ds, dm_dd = falloff_grad(d, v[0], v[1], self.invert)
        table, grads = _tables_and_grads(v[4:], VIGNETTE_KNOTS)
        effect, slope, gsel = _lookup_grad(table, grads, x)
        out = x + mask[:, None] * (effect - x)
        if jac is not None:
            jac *= (1 + mask[:, None] * (slope - 1))[:, :, None]
            for j, dm in enumerate((dm_dr, dm_ds, dm_dd * dd_du, dm_dd * dd_dv)):
                jac[:, :, start + j] += dm[:, None] * (effect - x)
            k = len(VIGNETTE_KNOTS)
            for c in range(3):
                jac[:, c, start + 4 + c * k:start + 4 + (c + 1) * k] += mask[:, None] * gsel[:, c]
        return out, jac

    def residuals(self, v, strength):
        return _curve_residuals(v[4:], VIGNETTE_KNOTS, strength, MAX_EFFECT_SLOPE)

    def op(self, v, digits):
        op = {"op": "vignette"}
        if (v[2], v[3]) != (0.5, 0.5):
            op["center"] = [round(float(v[2]), 4), round(float(v[3]), 4)]
        op["radius"] = round(float(v[0]), 4)
        op["softness"] = round(float(max(v[1], 0.01)), 4)
        if self.invert:
            op["invert"] = True
        op["curves"] = _curves_op(v[4:], VIGNETTE_KNOTS, digits)
        return op
