"""Choosing a recipe's structure: fit the candidates, score each as the real compiled filter
on the pairs, keep the cheapest within a tolerance of the best.

The fidelity reported is always measured with the real compiled filter on the full-size
uint8 pair, never with the float surrogate the solver fits.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..calibration import apply_in_frame
from ..compile import CompiledFilter
from ..compile import exact_enough as steps_exact_enough
from ..errors import InstafiltersError
from ..fidelity import Fidelity, fidelity
from ..recipe import FILTER_KEYS, parse_filter
from .model import COLOUR, Structure
from .pairs import Samples, hald_samples, load_pairs, photo_samples
from .solver import MAX_ITER, fit_parameters

log = logging.getLogger(__name__)

GLOW_ABOVE = 2.5  # try a central glow when the best fit so far is worse than this (dE00)


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


def exact_enough(recipe_mapping) -> bool:
    """Whether the compiled filter stays close to the float reference (compile's probe)."""
    f = compiled(recipe_mapping)
    return steps_exact_enough(f.steps, f.recipe)


def cost(s: Structure) -> float:
    """Rough single-core milliseconds on 500x375: LUT 0.7, transform 0.5, mask blend 1.9."""
    return 0.7 * s.pre_curves + 0.5 * s.matrix + 0.7 * s.post_curves + 1.9 * (s.vignette + s.glow)


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
    photos = load_pairs(pairs, "pair")
    halds = load_pairs(hald, "hald pair")
    if frame is not None:
        for before, _, b_name, _ in photos:
            if frame[0] < before.shape[0] or frame[1] < before.shape[1]:
                raise InstafiltersError(f"{b_name}: {before.shape[1]}x{before.shape[0]} does not "
                                        f"fit in the frame {frame[1]}x{frame[0]} (HxW "
                                        f"{frame[0]}x{frame[1]})")
    parts = [photo_samples(b, a, weight=1.0 / len(photos), frame=frame)
             for b, a, _, _ in photos]
    parts += [hald_samples(b, a, weight=hald_weight / len(halds)) for b, a, _, _ in halds]
    samples = Samples.concat(parts)
    half = None if frame is None else (frame[0] // 2, frame[1] // 2)

    def build(s, start=None):
        fitted = fit_parameters(samples, s, strength, max_iter, start)
        r = recipe_dict(name, fitted[0].ops(fitted[1]), description, set_, aliases)
        # selection scores the compiled filter on every other pixel (4x faster)
        de = float(np.mean([score(r, b[::2, ::2], a[::2, ::2], half).mean
                            for b, a, _, _ in photos]))
        log.info("%s: %s dE00 %.2f", name, s.label(), de)
        return fitted, r, de

    if structure is not None:
        recipe = build(structure)[1]
    else:
        recipe = _choose(build, name, tolerance)
    b, a, _, a_name = photos[0]
    f = score(recipe, b, a, frame)
    recipe["calibration"] = {"reference": Path(a_name).name, "de_mean": round(f.mean, 2),
                             "de_p95": round(f.p95, 2)}
    if frame is not None:
        recipe["calibration"]["frame"] = [int(frame[0]), int(frame[1])]
    return {k: recipe[k] for k in FILTER_KEYS if k in recipe}


def _choose(build, name, tolerance) -> dict:
    """The recipe of the cheapest candidate structure within `tolerance` of the best."""
    tried = []

    def attempt(s, start=None):
        fitted, r, de = build(s, start)
        ok = exact_enough(r)
        if not ok:
            log.info("%s: %s rejected: compiled output drifts from the float reference",
                     name, s.label())
        tried.append((s, r, de, ok))
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
    good = [t for t in tried if t[3]] or tried
    best_de = min(t[2] for t in good)
    cheap = sorted(good, key=lambda t: (cost(t[0]), t[2]))
    return next(t[1] for t in cheap if t[2] <= best_de + tolerance)
