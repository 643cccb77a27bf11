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

    pairs.py   loading, alignment check, sampling       stages.py  the kinds of stage
    model.py   Structure, parameters <-> stages         solver.py  Levenberg-Marquardt
    search.py  structure choice, scoring, fit_recipe    command.py `instafilters fit`
"""
from __future__ import annotations

from .model import COLOUR, FULL, STAGES, Model, Structure
from .pairs import Samples, hald_samples, photo_samples
from .search import compiled, exact_enough, fit_recipe, recipe_dict, score
from .solver import fit_parameters

__all__ = ["fit_recipe", "fit_parameters", "Structure", "Model", "STAGES", "FULL", "COLOUR",
           "Samples", "photo_samples", "hald_samples", "compiled", "score", "exact_enough",
           "recipe_dict"]
