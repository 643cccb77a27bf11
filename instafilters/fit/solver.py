"""Fitting one structure's parameters to samples: a box-constrained Levenberg-Marquardt on a
Lab error weighted like CIEDE2000, then once more reweighted toward the mean error.

Deterministic (fixed initial values, no randomness). Only numpy: scipy's least_squares was
10x slower here (it re-factorises a dense Jacobian each step, while the normal equations
are at most 60x60).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..fidelity import lightness_scale, rgb_to_lab, rgb_to_lab_grad
from .model import FULL, NOTHING, Model, Structure
from .pairs import Samples

MAX_ITER = 40  # Levenberg-Marquardt steps per fit
ROBUST_ROUNDS = 1  # reweighted refits toward the mean (L1) error


def weights_like_de2000(lab):
    """Per-sample scale of (dL, da, db): CIEDE2000's S_L for lightness, and for a and b a
    chroma scale between its S_C (1 + 0.045 C) and S_H (about 1 + 0.015 C)."""
    sl = lightness_scale(lab[:, 0])
    sc = 1 + 0.03 * np.hypot(lab[:, 1], lab[:, 2])
    return np.stack([1 / sl, 1 / sc, 1 / sc], axis=1)


class Problem:
    """Residuals and their Jacobian (data analytic, regulariser numeric)."""

    def __init__(self, model: Model, samples: Samples, strength):
        self.model, self.samples, self.strength = model, samples, strength
        w = np.sqrt(samples.weight / samples.weight.sum())[:, None]
        self.sw = w * weights_like_de2000(samples.lab)
        self._key, self._value = None, None

    def _eval(self, p):
        key = p.tobytes()
        if key != self._key:
            x, jx = self.model.forward(p, self.samples, jacobian=True)
            lab, jl = rgb_to_lab_grad(x)
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


def levenberg_marquardt(problem, p, lo, hi, max_iter, tol=1e-4):
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
        if inner != NOTHING:
            start = fit_parameters(samples, inner, strength, max_iter)
    if start is not None:
        m0, q = start
        for name, sl in m0.slices.items():
            if name in model.slices:
                p0[model.slices[name]] = q[sl]
    p = levenberg_marquardt(Problem(model, samples, strength), p0, lo, hi, max_iter)
    for _ in range(ROBUST_ROUNDS):
        # reweight toward the mean error (what dE00 reports) rather than its square
        lab = rgb_to_lab(model.forward(p, samples))
        err = np.sqrt((((lab - samples.lab) * weights_like_de2000(samples.lab)) ** 2).sum(1))
        robust = samples.reweighted(samples.weight / np.maximum(err, 1.0))
        p = levenberg_marquardt(Problem(model, robust, strength), p, lo, hi, max_iter // 2)
    return model, p
