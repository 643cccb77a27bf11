"""Fit a declarative recipe to pixel-aligned before/after image pairs.

The model is the one the compiler runs fastest, and every piece of it is an existing op:

    curves (per channel, monotone PCHIP knots)  ->  color_matrix (3x3 + offset)
    ->  curves  or  vignette (tone-dependent: its effect is a curves op)
    ->  optional inverted vignette (a warm central glow, also curves)

so a fitted recipe compiles to at most LUT+transform, then a LUT or one or two cached-mask
blends. Stages that do not pay for themselves are left out (`Structure`). Vignettes are
centred: the calibration references are crops of the app's square output, so they are
fitted in that frame (`frame`) rather than letting the centre drift to fit the crop.

Fitting is deterministic (fixed initial values, no randomness): a float surrogate of the
recipe (with its analytic Jacobian) is evaluated on a fixed strided subsample of the pairs
and fitted by a box-constrained Levenberg-Marquardt on a Lab error weighted like CIEDE2000,
then once more reweighted toward the mean error; it is regularised toward smooth, not too
steep curves and a near-identity colour matrix where the pairs have no samples. Hald pairs
(a colour pattern and its filtered version) add one sample per pattern colour, which pins the
colour transform over the whole gamut. The fidelity reported is always measured with the
real compiled filter on the full-size uint8 pair.

Only numpy is needed (scipy's least_squares was 10x slower here: it re-factorises a dense
Jacobian each step, while the normal equations are at most 60x60).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from . import ops
from .compile import CompiledFilter
from .compile import exact_enough as steps_exact_enough
from .errors import InstafiltersError
from .fidelity import Fidelity, apply_in_frame, fidelity, rgb_to_lab
from .recipe import parse_filter

log = logging.getLogger(__name__)

KNOTS = np.array([0, 32, 64, 96, 128, 160, 192, 224, 255], dtype=np.float64)
VIGNETTE_KNOTS = np.array([0, 64, 128, 192, 255], dtype=np.float64)
PHOTO_STRIDE = 12  # 1080x885 -> 90x74 fitting samples (about 6.6k)
HALD_SAMPLES = 4000  # pattern colours used per Hald pair
MAX_ITER = 40  # Levenberg-Marquardt steps per fit
ROBUST_ROUNDS = 1  # reweighted refits toward the mean (L1) error
# Steep curve segments after a rounding step (the matrix, the vignette blend) amplify it:
# these limits keep the compiled filter within 2 grey levels of the float reference.
MAX_SLOPE = 1.4
MIN_SOFTNESS = 0.35  # vignette falloff, in units of the centre-to-corner distance
MAX_EFFECT_SLOPE = 1.1


@dataclass(frozen=True)
class Structure:
    """Which stages a fitted recipe has."""
    pre_curves: bool = True
    matrix: bool = True
    post_curves: bool = True
    vignette: bool = True
    glow: bool = False
    vignette_first: bool = False  # vignettes act on the input, before the colour stages

    @classmethod
    def of(cls, recipe) -> "Structure":
        """The structure of a recipe written by `fit_recipe` (to refit it the same way)."""
        names = [op.name for op in recipe.ops]
        first_matrix = names.index("color_matrix") if "color_matrix" in names else None
        curves_at = [i for i, n in enumerate(names) if n == "curves"]
        vignettes = [op for op in recipe.ops if op.name == "vignette"]
        if first_matrix is None:
            pre, post = False, bool(curves_at)
        else:
            pre = any(i < first_matrix for i in curves_at)
            post = any(i > first_matrix for i in curves_at)
        first = bool(vignettes) and recipe.ops[0].name == "vignette"
        if first_matrix is None:
            pre, post = (bool(curves_at), False) if first else (False, bool(curves_at))
        return cls(pre, first_matrix is not None, post,
                   any(not v.params["invert"] for v in vignettes),
                   any(v.params["invert"] for v in vignettes), first)

    def label(self) -> str:
        colour = [n for n, on in (("curves", self.pre_curves), ("matrix", self.matrix),
                                  ("curves", self.post_curves)) if on]
        spatial = [n for n, on in (("vignette", self.vignette), ("glow", self.glow)) if on]
        parts = spatial + colour if self.vignette_first else colour + spatial
        return "+".join(parts) or "identity"


FULL = Structure(True, True, True, True, True)


# ---------------------------------------------------------------- samples
@dataclass
class Samples:
    """Fitting data: input colours, their normalised position (u, v), target Lab."""
    rgb: np.ndarray  # (N, 3) uint8
    pos: np.ndarray  # (N, 2) u, v in [0, 1] at pixel centres
    lab: np.ndarray  # (N, 3) target Lab
    weight: np.ndarray  # (N,)

    @staticmethod
    def concat(parts: Sequence["Samples"]) -> "Samples":
        return Samples(*(np.concatenate([getattr(p, f) for p in parts])
                         for f in ("rgb", "pos", "lab", "weight")))


def _position(height, width, rows, cols):
    u = (np.asarray(cols, dtype=np.float64) + 0.5) / width
    v = (np.asarray(rows, dtype=np.float64) + 0.5) / height
    return np.stack(np.broadcast_arrays(u, v), axis=-1)


def _load(image, label):
    from .io import load_rgb
    try:
        return load_rgb(image)
    except InstafiltersError:
        raise
    except (ValueError, OSError) as e:
        raise InstafiltersError(f"{label}: {e}") from None


def _check_pair(before, after, before_name, after_name):
    if before.shape != after.shape:
        raise InstafiltersError(
            f"{after_name}: size {after.shape[1]}x{after.shape[0]} does not match "
            f"{before_name} ({before.shape[1]}x{before.shape[0]}); pairs must be pixel aligned")
    if min(before.shape[:2]) < 16:
        raise InstafiltersError(f"{before_name}: image too small to fit ({before.shape[1]}x"
                                f"{before.shape[0]}, need at least 16x16)")
    shift = _best_shift(before, after)
    if shift != (0, 0):
        raise InstafiltersError(
            f"{after_name}: not pixel aligned with {before_name} (edges match best when "
            f"shifted by {shift[1]}, {shift[0]} px)")


def _edges(rgb):
    g = rgb.astype(np.float32).mean(axis=2)
    gx = np.abs(np.diff(g, axis=1))[:-1, :]
    gy = np.abs(np.diff(g, axis=0))[:, :-1]
    e = gx + gy
    return (e - e.mean()) / (e.std() + 1e-6)


def _best_shift(before, after, max_shift=3):
    """The (dy, dx) shift that best lines up the edges of the two images."""
    h, w = before.shape[:2]
    step = max(1, int(np.sqrt(h * w / 400_000.0)))  # about 400k pixels is plenty
    eb, ea = _edges(before[::step, ::step]), _edges(after[::step, ::step])
    m = max_shift
    core = eb[m:-m, m:-m]
    if core.size == 0:
        return (0, 0)
    best, best_score = (0, 0), -np.inf
    scores = {}
    for dy in range(-m, m + 1):
        for dx in range(-m, m + 1):
            other = ea[m + dy:ea.shape[0] - m + dy, m + dx:ea.shape[1] - m + dx]
            scores[(dy, dx)] = float((core * other).mean())
    best = max(scores, key=lambda k: (scores[k], -abs(k[0]) - abs(k[1])))
    best_score = scores[best]
    # within noise of the unshifted match counts as aligned (flat images have weak edges)
    if best != (0, 0) and best_score - scores[(0, 0)] < 0.05 * max(abs(best_score), 1e-6):
        return (0, 0)
    return best if best_score > 0.05 else (0, 0)


def _weights_like_de2000(lab):
    """Per-sample scale of (dL, da, db) approximating CIEDE2000's SL and SC/SH."""
    sl = 1 + 0.015 * (lab[:, 0] - 50) ** 2 / np.sqrt(20 + (lab[:, 0] - 50) ** 2)
    sc = 1 + 0.03 * np.hypot(lab[:, 1], lab[:, 2])
    return np.stack([1 / sl, 1 / sc, 1 / sc], axis=1)


def photo_samples(before, after, stride=PHOTO_STRIDE, offset=0, weight=1.0,
                  frame=None) -> Samples:
    """Every `stride`-th pixel of a full-size pair (exact colours, no resampling).

    `frame` (height, width): the pair is the top-left part of a larger frame the filter was
    applied to (a crop of the app's output), so positions are taken in that frame.
    """
    h, w = before.shape[:2]
    rows = np.arange(offset % stride, h, stride)
    cols = np.arange(offset % stride, w, stride)
    h, w = frame or (h, w)
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    rgb = before[rr, cc].reshape(-1, 3)
    out = after[rr, cc].reshape(-1, 3)
    n = len(rgb)
    return Samples(rgb, _position(h, w, rr, cc).reshape(-1, 2), rgb_to_lab(out),
                   np.full(n, weight / n))


def hald_samples(before, after, count=HALD_SAMPLES, weight=1.0) -> Samples:
    """One sample per uniform colour block of a colour pattern: the median filtered colour
    of the block's interior (away from JPEG ringing at block edges), at its mean position."""
    h, w = before.shape[:2]
    b = before.astype(np.int32)
    key = (b[..., 0] << 16) | (b[..., 1] << 8) | b[..., 2]
    interior = np.ones((h, w), bool)
    for dy, dx in ((0, 2), (0, -2), (2, 0), (-2, 0)):
        interior &= key == np.roll(key, (dy, dx), axis=(0, 1))
    interior[:2, :] = interior[-2:, :] = interior[:, :2] = interior[:, -2:] = False
    rows, cols = np.nonzero(interior)
    keys = key[rows, cols]
    order = np.argsort(keys, kind="stable")
    keys, rows, cols = keys[order], rows[order], cols[order]
    uniq, start, counts = np.unique(keys, return_index=True, return_counts=True)
    big = counts >= 4
    # the large uniform surround (a single colour) is a border, not a sample
    big &= counts < 0.05 * h * w
    uniq, start, counts = uniq[big], start[big], counts[big]
    if len(uniq) < 50:
        raise InstafiltersError("Hald pair: the original has too few uniform colour blocks "
                                f"({len(uniq)}); expected a colour-sampling pattern")
    pick = np.linspace(0, len(uniq) - 1, min(count, len(uniq))).round().astype(int)
    targets, pos = [], []
    for i in pick:
        sl = slice(start[i], start[i] + counts[i])
        targets.append(np.median(after[rows[sl], cols[sl]].astype(np.float64), axis=0))
        pos.append(_position(h, w, rows[sl].mean(), cols[sl].mean()))
    u = uniq[pick]
    rgb = np.stack([(u >> 16) & 255, (u >> 8) & 255, u & 255], axis=1).astype(np.uint8)
    n = len(rgb)
    return Samples(rgb, np.asarray(pos), rgb_to_lab(np.asarray(targets) / 255.0),
                   np.full(n, weight / n))


# ---------------------------------------------------------------- the model
def _pchip_table(knots_x, knots_y, grid):
    """Curve through knots (x, y in 0-1) sampled at `grid`: ops.curve's PCHIP."""
    return ops.monotone_spline(knots_x, knots_y)(grid)


_GRID = np.linspace(0.0, 1.0, 256)


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


_HALF_DIAGONAL = np.hypot(0.5, 0.5)


class Model:
    """Parameter vector <-> stages, and the float surrogate of the recipe."""

    def __init__(self, structure: Structure):
        self.s = structure
        self.slices = {}
        n = 0
        for name, size, on in (("pre", 3 * len(KNOTS), structure.pre_curves),
                               ("matrix", 12, structure.matrix),
                               ("post", 3 * len(KNOTS), structure.post_curves),
                               ("vignette", 4 + 3 * len(VIGNETTE_KNOTS), structure.vignette),
                               ("glow", 4 + 3 * len(VIGNETTE_KNOTS), structure.glow)):
            if on:
                self.slices[name] = slice(n, n + size)
                n += size
        self.size = n

    def initial(self):
        p = np.zeros(self.size)
        lo, hi = np.full(self.size, -np.inf), np.full(self.size, np.inf)
        ident = np.tile(KNOTS / 255.0, 3)
        vid = np.tile(VIGNETTE_KNOTS / 255.0, 3)
        for name, sl in self.slices.items():
            if name in ("pre", "post"):
                p[sl], lo[sl], hi[sl] = ident, 0.0, 1.0
            elif name == "matrix":
                p[sl] = np.r_[np.eye(3).ravel(), 0, 0, 0]
                lo[sl] = np.r_[np.full(9, -3.0), np.full(3, -1.0)]
                hi[sl] = np.r_[np.full(9, 3.0), np.full(3, 1.0)]
            else:
                start = 0.55 if name == "vignette" else 0.05
                p[sl] = np.r_[start, 0.6, 0.5, 0.5, vid]
                # centred: an off-centre fit would bake the framing of the reference in.
                # softness >= MIN_SOFTNESS: one saturated photo cannot tell a soft falloff
                # from a sharp one, and a sharp one draws a visible ring across skies.
                lo[sl] = np.r_[0.0, MIN_SOFTNESS, 0.5, 0.5, np.zeros(len(vid))]
                hi[sl] = np.r_[1.2, 1.5, 0.5, 0.5, np.ones(len(vid))]
        return p, lo, hi

    def part(self, p, name):
        return p[self.slices[name]] if name in self.slices else None

    def _tables_and_grads(self, y, knots):
        """Tables (256, 3) and their derivatives (256, 3, K) w.r.t. each channel's knots."""
        y = y.reshape(3, len(knots))
        xs = knots / 255.0
        tables = np.stack([_pchip_table(xs, y[c], _GRID) for c in range(3)], axis=1)
        grads = np.empty((256, 3, len(knots)))
        eps = 1e-4
        for c in range(3):
            for k in range(len(knots)):
                yk = y[c].copy()
                yk[k] += eps
                grads[:, c, k] = (_pchip_table(xs, yk, _GRID) - tables[:, c]) / eps
        return tables, grads

    def order(self):
        spatial = ["vignette", "glow"]
        colour = ["pre", "matrix", "post"]
        names = spatial + colour if self.s.vignette_first else colour + spatial
        return [n for n in names if n in self.slices]

    def forward(self, p, samples: Samples, jacobian=False):
        """Surrogate output (N, 3) in [0, 1] and, if asked, its Jacobian (N, 3, P)."""
        x = samples.rgb / 255.0
        jac = np.zeros((len(x), 3, self.size)) if jacobian else None
        for name in self.order():
            v, sl = self.part(p, name), self.slices[name]
            if name in ("pre", "post"):
                table, grads = self._tables_and_grads(v, KNOTS)
                x, slope, gsel = _lookup_grad(table, grads, x)
                if jacobian:
                    jac *= slope[:, :, None]
                    k = len(KNOTS)
                    for c in range(3):
                        jac[:, c, sl.start + c * k:sl.start + (c + 1) * k] += gsel[:, c]
            elif name == "matrix":
                mat = v[:9].reshape(3, 3)
                raw = x @ mat.T + v[9:]
                if jacobian:
                    jac = np.einsum("ij,njp->nip", mat, jac)
                    for i in range(3):
                        jac[:, i, sl.start + 3 * i:sl.start + 3 * i + 3] = x
                        jac[:, i, sl.start + 9 + i] = 1.0
                    jac *= ((raw > 0) & (raw < 1))[:, :, None]
                x = np.clip(raw, 0.0, 1.0)
            else:
                r, s = v[0], max(v[1], 1e-6)
                du = samples.pos[:, 0] - v[2]
                dv = samples.pos[:, 1] - v[3]
                dist = np.hypot(du, dv) / _HALF_DIAGONAL
                t_raw = (dist - r) / s
                t = np.clip(t_raw, 0.0, 1.0)
                mask = t * t * (3 - 2 * t)
                dmask_dt = 6 * t * (1 - t) * ((t_raw > 0) & (t_raw < 1))
                if name == "glow":
                    mask, dmask_dt = 1.0 - mask, -dmask_dt
                table, grads = self._tables_and_grads(v[4:], VIGNETTE_KNOTS)
                effect, slope, gsel = _lookup_grad(table, grads, x)
                out = x + mask[:, None] * (effect - x)
                if jacobian:
                    jac *= (1 + mask[:, None] * (slope - 1))[:, :, None]
                    jac[:, :, sl.start] += (dmask_dt * (-1 / s))[:, None] * (effect - x)
                    jac[:, :, sl.start + 1] += (dmask_dt * (-t_raw / s))[:, None] * (effect - x)
                    safe = np.maximum(dist, 1e-9) * _HALF_DIAGONAL ** 2
                    for j, dj in ((2, du), (3, dv)):
                        jac[:, :, sl.start + j] += (dmask_dt * (-dj / safe) / s)[:, None] \
                            * (effect - x)
                    k = len(VIGNETTE_KNOTS)
                    for c in range(3):
                        jac[:, c, sl.start + 4 + c * k:sl.start + 4 + (c + 1) * k] += \
                            mask[:, None] * gsel[:, c]
                x = out
        return (x, jac) if jacobian else x

    def regularisation(self, p, strength):
        """Residuals that keep the recipe small and smooth where data is thin."""
        res = []
        for name in ("pre", "post", "vignette", "glow"):
            v = self.part(p, name)
            if v is None:
                continue
            knots = KNOTS if name in ("pre", "post") else VIGNETTE_KNOTS
            y = (v if name in ("pre", "post") else v[4:]).reshape(3, len(knots))
            h = np.diff(knots) / 255.0
            slope = np.diff(y, axis=1) / h
            res.append(strength * 0.15 * np.diff(slope, axis=1).ravel())  # smooth
            res.append(strength * 3.0 * np.minimum(slope, 0).ravel())  # monotone
            if name != "pre":
                limit = MAX_SLOPE if name == "post" else MAX_EFFECT_SLOPE
                res.append(strength * 20.0 * np.maximum(slope - limit, 0).ravel())
            res.append(strength * 0.5 * (y - knots / 255.0).ravel())  # near identity
        m = self.part(p, "matrix")
        if m is not None:
            res.append(strength * 0.5 * (m - np.r_[np.eye(3).ravel(), 0, 0, 0]))
        return np.concatenate(res) if res else np.zeros(0)

    # -------------------------------------------------------- parameters -> recipe ops
    def ops(self, p, digits=1):
        def knots(xs, ys):
            ys = np.maximum.accumulate(np.clip(ys, 0.0, 1.0) * 255.0)
            return [[int(x), round(float(y), digits)] for x, y in zip(xs, ys)]

        def curves(v, xs):
            y = v.reshape(3, len(xs))
            return {c: knots(xs, y[i]) for i, c in enumerate("rgb")}

        out = []
        for name in self.order():
            v = self.part(p, name)
            if name in ("pre", "post"):
                out.append({"op": "curves", **curves(v, KNOTS)})
            elif name == "matrix":
                out.append({"op": "color_matrix",
                            "matrix": [[round(float(x), 4) for x in row]
                                       for row in v[:9].reshape(3, 3)],
                            "offset": [round(float(x) * 255.0, 2) for x in v[9:]]})
            else:
                op = {"op": "vignette"}
                if (v[2], v[3]) != (0.5, 0.5):
                    op["center"] = [round(float(v[2]), 4), round(float(v[3]), 4)]
                op["radius"] = round(float(v[0]), 4)
                op["softness"] = round(float(max(v[1], 0.01)), 4)
                if name == "glow":
                    op["invert"] = True
                op["curves"] = curves(v[4:], VIGNETTE_KNOTS)
                out.append(op)
        return out


# ---------------------------------------------------------------- fitting
_RGB_TO_XYZ_W = np.array([[0.412453, 0.357580, 0.180423],
                          [0.212671, 0.715160, 0.072169],
                          [0.019334, 0.119193, 0.950227]]) / np.array([0.95047, 1.0, 1.08883])[:, None]
_XYZ_TO_LAB = np.array([[0.0, 116.0, 0.0], [500.0, -500.0, 0.0], [0.0, 200.0, -200.0]])


def _lab_jacobian(x):
    """Lab of float sRGB x (N, 3) and d Lab / d x (N, 3, 3); same formulas as fidelity."""
    x = np.clip(x, 0.0, 1.0)
    high = x > 0.04045
    lin = np.where(high, ((x + 0.055) / 1.055) ** 2.4, x / 12.92)
    dlin = np.where(high, 2.4 / 1.055 * ((x + 0.055) / 1.055) ** 1.4, 1 / 12.92)
    xyz = lin @ _RGB_TO_XYZ_W.T
    eps = (6.0 / 29.0) ** 3
    big = xyz > eps
    f = np.where(big, np.cbrt(np.maximum(xyz, eps)), xyz / (3 * (6.0 / 29.0) ** 2) + 4.0 / 29.0)
    df = np.where(big, 1.0 / (3.0 * np.maximum(f, 1e-6) ** 2), 1.0 / (3 * (6.0 / 29.0) ** 2))
    lab = f @ _XYZ_TO_LAB.T + np.array([-16.0, 0.0, 0.0])
    jac = _XYZ_TO_LAB[None] * df[:, None, :]  # d lab / d xyz
    jac = jac @ _RGB_TO_XYZ_W  # d lab / d lin
    return lab, jac * dlin[:, None, :]


class _Problem:
    """Residuals and their Jacobian for least_squares (data analytic, regulariser numeric)."""

    def __init__(self, model, samples, strength):
        self.model, self.samples, self.strength = model, samples, strength
        w = np.sqrt(samples.weight / samples.weight.sum())[:, None]
        self.sw = w * _weights_like_de2000(samples.lab)
        self._key, self._value = None, None

    def _eval(self, p):
        key = p.tobytes()
        if key != self._key:
            x, jx = self.model.forward(p, self.samples, jacobian=True)
            lab, jl = _lab_jacobian(x)
            data = ((lab - self.samples.lab) * self.sw).ravel()
            jdata = (np.einsum("nij,njp->nip", jl, jx) * self.sw[:, :, None]).reshape(-1, len(p))
            self._key, self._value = key, (data, jdata)
        return self._value

    def fun(self, p):
        return np.concatenate([self._eval(p)[0], self.model.regularisation(p, self.strength)])

    def jac(self, p):
        reg0 = self.model.regularisation(p, self.strength)
        jreg = np.empty((len(reg0), len(p)))
        for i in range(len(p)):
            q = p.copy()
            q[i] += 1e-6
            jreg[:, i] = (self.model.regularisation(q, self.strength) - reg0) / 1e-6
        return np.vstack([self._eval(p)[1], jreg])


def fit_parameters(samples: Samples, structure: Structure = FULL, strength=1.0,
                   max_iter=MAX_ITER, start=None):
    """Fit one structure to the samples; returns (model, parameters).

    `start` (model, parameters) of an earlier fit seeds the stages both have; without it a
    structure with vignettes first fits its colour stages alone.
    """
    model = Model(structure)
    p0, lo, hi = model.initial()
    if start is None and (structure.vignette or structure.glow):
        inner = replace(structure, vignette=False, glow=False, vignette_first=False)
        if inner != Structure(False, False, False, False, False):
            start = fit_parameters(samples, inner, strength, max_iter)
    if start is not None:
        m0, q = start
        for name, sl in m0.slices.items():
            if name in model.slices:
                p0[model.slices[name]] = q[sl]
    problem = _Problem(model, samples, strength)
    p = _levenberg_marquardt(problem, p0, lo, hi, max_iter)
    for _ in range(ROBUST_ROUNDS):
        # reweight toward the mean error (what dE00 reports) rather than its square
        lab = rgb_to_lab(model.forward(p, samples))
        err = np.sqrt((((lab - samples.lab) * _weights_like_de2000(samples.lab)) ** 2).sum(1))
        robust = replace_weights(samples, samples.weight / np.maximum(err, 1.0))
        p = _levenberg_marquardt(_Problem(model, robust, strength), p, lo, hi, max_iter // 2)
    return model, p


def replace_weights(samples, weight):
    """The same samples with new weights, rescaled to the same total."""
    return Samples(samples.rgb, samples.pos, samples.lab,
                   weight * samples.weight.sum() / weight.sum())


def _levenberg_marquardt(problem, p, lo, hi, max_iter, tol=1e-4):
    """Box-constrained Levenberg-Marquardt (steps projected onto the bounds).

    Deterministic and cheap per step: the normal equations are only P x P (P <= 100).
    """
    p = np.clip(p, lo, hi)
    r = problem.fun(p)
    cost = 0.5 * float(r @ r)
    lam = 1e-3
    for _ in range(max_iter):
        jac = problem.jac(p)
        g = jac.T @ r
        h = jac.T @ jac
        diag = np.diag(h).copy() + 1e-9
        improved = False
        for _ in range(12):
            step = np.linalg.solve(h + lam * np.diag(diag), -g)
            q = np.clip(p + step, lo, hi)
            rq = problem.fun(q)
            cq = 0.5 * float(rq @ rq)
            if cq < cost:
                improved = True
                break
            lam *= 4.0
        if not improved:
            break
        gain = (cost - cq) / max(cost, 1e-12)
        p, r, cost = q, rq, cq
        lam = max(lam / 3.0, 1e-7)
        if gain < tol:
            break
    return p


def recipe_dict(name, ops_, description=None, set_="extra", aliases=(), calibration=None):
    """A filter mapping in the layout of filters.yaml."""
    d = {"name": name}
    if aliases:
        d["aliases"] = list(aliases)
    d["set"] = set_
    d["description"] = description or f"Fitted by `instafilters fit` ({len(ops_)} ops)."
    if calibration:
        d["calibration"] = calibration
    d["ops"] = ops_
    return d


def compiled(recipe_mapping) -> CompiledFilter:
    return CompiledFilter(parse_filter(recipe_mapping, file="<fit>", index=0))


def score(recipe_mapping, before, after, frame=None) -> Fidelity:
    """Fidelity of the real compiled filter on a full-size uint8 pair."""
    return fidelity(apply_in_frame(compiled(recipe_mapping), before, frame), after)


def _pairs(pairs, label):
    loaded = []
    for i, pair in enumerate(pairs):
        if len(pair) != 2:
            raise InstafiltersError(f"{label} #{i + 1}: expected a (before, after) pair")
        b_name, a_name = (str(x) if isinstance(x, (str, Path)) else f"{label} #{i + 1} {w}"
                          for x, w in zip(pair, ("before", "after")))
        before, after = _load(pair[0], b_name), _load(pair[1], a_name)
        _check_pair(before, after, b_name, a_name)
        loaded.append((before, after, b_name, a_name))
    return loaded


COLOUR = Structure(True, True, True, False, False)
GLOW_ABOVE = 2.5  # try a central glow when the best fit so far is worse than this (dE00)


def fit_recipe(pairs, name, *, hald=(), structure: Structure | None = None,
               hald_weight=1.0, strength=1.0, description=None, set_="extra", aliases=(),
               max_iter=MAX_ITER, tolerance=0.15, frame=None) -> dict:
    """Fit a recipe to pixel-aligned (before, after) pairs (paths, PIL images or arrays).

    `hald` adds (pattern, filtered pattern) pairs that constrain the colour transform over
    the whole gamut. With `structure=None` the structure is chosen among curves -> matrix ->
    curves, curves -> matrix -> vignette (-> central glow, when still far off) and matrix ->
    curves: the cheapest whose mean dE00 (compiled filter, on the pairs) is within
    `tolerance` of the best, among those whose compiled output stays within the exactness
    margins of the float reference. Returns a recipe mapping ready for YAML, with
    `calibration` measured on the first pair.

    `frame` (height, width): the photo pairs are the top-left part of the frame the filter
    saw (references cropped from the app's square output); vignettes are fitted, and
    fidelity measured, in that frame.
    """
    if not pairs:
        raise InstafiltersError("fit needs at least one --before/--after pair")
    photos = _pairs(pairs, "pair")
    halds = _pairs(hald, "hald pair")
    if frame is not None:
        for before, _, b_name, _ in photos:
            if frame[0] < before.shape[0] or frame[1] < before.shape[1]:
                raise InstafiltersError(f"{b_name}: {before.shape[1]}x{before.shape[0]} does not "
                                        f"fit in the frame {frame[1]}x{frame[0]} (HxW "
                                        f"{frame[0]}x{frame[1]})")
    parts = [photo_samples(b, a, weight=1.0 / len(photos), frame=frame)
             for b, a, _, _ in photos]
    half = None if frame is None else (frame[0] // 2, frame[1] // 2)
    parts += [hald_samples(b, a, weight=hald_weight / len(halds)) for b, a, _, _ in halds]
    samples = Samples.concat(parts)

    def build(s, start=None):
        fitted = fit_parameters(samples, s, strength, max_iter, start)
        r = recipe_dict(name, fitted[0].ops(fitted[1]), description, set_, aliases)
        # selection scores the compiled filter on every other pixel (4x faster)
        de = float(np.mean([score(r, b[::2, ::2], a[::2, ::2], half).mean
                            for b, a, _, _ in photos]))
        log.info("%s: %s dE00 %.2f", name, s.label(), de)
        return fitted, r, de

    if structure is not None:
        _, recipe, _ = build(structure)
    else:
        tried = []

        def attempt(s, start=None):
            fitted, r, de = build(s, start)
            ok = exact_enough(r)
            if not ok:
                log.info("%s: %s rejected: compiled output drifts from the float reference",
                         name, s.label())
            tried.append((s, fitted, r, de, ok))
            return fitted, de

        colour, colour_de = attempt(COLOUR)
        # vignettes go straight after the matrix: a curve between them would amplify the
        # rounding of the matrix and of the blend beyond what the compiler may drift
        vig = replace(COLOUR, post_curves=False, vignette=True)
        vig_fit, vig_de = attempt(vig, colour)
        if vig_de < colour_de - tolerance and vig_de > GLOW_ABOVE:
            attempt(replace(vig, glow=True), vig_fit)
        if colour_de <= vig_de + tolerance:
            attempt(replace(COLOUR, pre_curves=False), colour)
        good = [t for t in tried if t[4]] or tried
        best_de = min(t[3] for t in good)
        cheap = sorted(good, key=lambda t: (_cost(t[0]), t[3]))
        recipe = next(t[2] for t in cheap if t[3] <= best_de + tolerance)
    b, a, _, a_name = photos[0]
    f = score(recipe, b, a, frame)
    recipe["calibration"] = {"reference": Path(a_name).name, "de_mean": round(f.mean, 2),
                             "de_p95": round(f.p95, 2)}
    if frame is not None:
        recipe["calibration"]["frame"] = [int(frame[0]), int(frame[1])]
    recipe = {k: recipe[k] for k in ("name", "aliases", "set", "description", "calibration",
                                     "ops") if k in recipe}
    return recipe


def exact_enough(recipe_mapping) -> bool:
    """Whether the compiled filter stays close to the float reference (compile's probe)."""
    f = compiled(recipe_mapping)
    return steps_exact_enough(f.steps, f.recipe)


def _cost(s: Structure) -> float:
    """Rough single-core milliseconds on 500x375: LUT 0.7, transform 0.5, mask blend 1.9."""
    return 0.7 * s.pre_curves + 0.5 * s.matrix + 0.7 * s.post_curves + 1.9 * (s.vignette + s.glow)


# ---------------------------------------------------------------- YAML
def _flow(value):
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}" if abs(value) >= 1e-4 or value == 0 else "0"
    if isinstance(value, str):
        import json
        plain = value and not value[0].isdigit() and all(ch.isalnum() or ch in "-_." for ch in value)
        return value if plain else json.dumps(value)
    return str(value)


def to_yaml(recipes, header="") -> str:
    """Recipe mappings -> readable YAML (block filters, flow-style knot lists)."""
    lines = [header.rstrip("\n")] if header else []
    lines += ["version: 1", "filters:"]
    for r in recipes:
        lines.append(f"- name: {_flow(r['name'])}")
        for key in ("aliases", "set", "description", "calibration"):
            if key in r:
                lines.append(f"  {key}: {_flow(r[key])}")
        lines.append("  ops:")
        for op in r["ops"]:
            items = list(op.items())
            lines.append(f"  - {items[0][0]}: {_flow(items[0][1])}")
            for k, v in items[1:]:
                lines.append(f"    {k}: {_flow(v)}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- command
def _click_command():
    import click

    @click.command("fit")
    @click.option("--before", "befores", multiple=True, required=True,
                  type=click.Path(dir_okay=False), help="Original image (repeat for more pairs).")
    @click.option("--after", "afters", multiple=True, required=True,
                  type=click.Path(dir_okay=False), help="Filtered image, pixel aligned with "
                  "the --before of the same position.")
    @click.option("--name", required=True, help="Filter name (a lowercase slug).")
    @click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
                  help="Recipe YAML to write (default: print it).")
    @click.option("--hald", "halds", multiple=True, type=click.Path(dir_okay=False),
                  help="A colour-sampling pattern (repeatable) ...")
    @click.option("--hald-after", "hald_afters", multiple=True, type=click.Path(dir_okay=False),
                  help="... and the filter's output of it, pixel aligned.")
    @click.option("--structure", type=click.Choice(["auto", "full", "simple"]), default="auto",
                  show_default=True, help="auto: the cheapest pipeline within 0.15 dE of the "
                  "best; full: curves, matrix, curves, vignette and glow; simple: no vignettes.")
    @click.option("--frame", default=None, metavar="HxW",
                  help="The pairs are the top-left part of an HxW frame the filter saw "
                  "(e.g. crops of square app output: 1080x1080); vignettes are fitted in it.")
    def fit_command(befores, afters, name, output, halds, hald_afters, structure, frame):
        """Fit a recipe (curves -> color matrix -> curves -> vignettes) to before/after pairs
        and print the fidelity (CIEDE2000 of the compiled filter) on each pair.

        \b
        Example:
          instafilters fit --before normal.jpg --after toaster.jpg --name mytoaster -o my.yaml
          instafilters apply --recipes my.yaml -f mytoaster photo.jpg out.jpg
        """
        from .recipe import SLUG, load_recipe_file
        from .io import atomic_write_bytes

        if len(befores) != len(afters):
            raise click.UsageError(f"got {len(befores)} --before but {len(afters)} --after; "
                                   "give them in pairs")
        if len(halds) != len(hald_afters):
            raise click.UsageError(f"got {len(halds)} --hald but {len(hald_afters)} "
                                   "--hald-after; give them in pairs")
        if not SLUG.match(name):
            raise click.BadParameter(f"must be a lowercase slug like 'toaster', got {name!r}",
                                     param_hint="--name")
        if frame is not None:
            dims = frame.lower().split("x")
            if len(dims) != 2 or not all(d.isdigit() and int(d) > 0 for d in dims):
                raise click.BadParameter(f"expected HEIGHTxWIDTH like 1080x1080, got {frame!r}",
                                         param_hint="--frame")
            frame = (int(dims[0]), int(dims[1]))
        chosen = {"auto": None, "full": FULL,
                  "simple": Structure(True, True, True, False, False)}[structure]
        pairs = list(zip(befores, afters))
        recipe = fit_recipe(pairs, name, hald=list(zip(halds, hald_afters)), structure=chosen,
                            frame=frame)
        text = to_yaml([recipe], header="# written by `instafilters fit`")
        for before, after in pairs:
            b, a = _load(before, before), _load(after, after)
            f = score(recipe, b, a, frame)
            click.echo(f"{after}: mean dE00 {f.mean:.2f}, p95 {f.p95:.2f} "
                       f"(do nothing: {fidelity(b, a).mean:.2f})")
        if output:
            atomic_write_bytes(output, text.encode("utf-8"))
            load_recipe_file(output)  # what we wrote must load
            click.echo(f"wrote {output} ({Structure.of(load_recipe_file(output)[0]).label()})")
        else:
            click.echo(text, nl=False)
    return fit_command


fit_command = _click_command()
