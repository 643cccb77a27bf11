"""The fitted model: which stages a recipe has (`Structure`), and a parameter vector <-> those
stages (`Model`): the float surrogate of the recipe with its Jacobian, the regulariser and
the recipe ops.

    curves (per channel, monotone PCHIP knots)  ->  color_matrix (3x3 + offset)
    ->  curves  or  vignette (tone-dependent: its effect is a curves op)
    ->  optional inverted vignette (a warm central glow, also curves)
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from .stages import MAX_SLOPE, Curves, Matrix, Vignette

# Structure field -> the kind of that stage, in parameter order. The colour stages run in
# this order, the spatial ones (SPATIAL) after them or, with `vignette_first`, before.
STAGES = {
    "pre_curves": Curves(),
    "matrix": Matrix(),
    "post_curves": Curves(max_slope=MAX_SLOPE),
    "vignette": Vignette(start=0.55),
    "glow": Vignette(start=0.05, invert=True),
}
SPATIAL = ("vignette", "glow")


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
        first = bool(vignettes) and recipe.ops[0].name == "vignette"
        if first_matrix is None:
            pre, post = (bool(curves_at), False) if first else (False, bool(curves_at))
        else:
            pre = any(i < first_matrix for i in curves_at)
            post = any(i > first_matrix for i in curves_at)
        return cls(pre, first_matrix is not None, post,
                   any(not v.params["invert"] for v in vignettes),
                   any(v.params["invert"] for v in vignettes), first)

    def stages(self) -> list:
        """The stage names present, in the order the recipe applies them."""
        colour = [n for n in STAGES if n not in SPATIAL]
        order = list(SPATIAL) + colour if self.vignette_first else colour + list(SPATIAL)
        return [n for n in order if getattr(self, n)]

    def label(self) -> str:
        words = {"pre_curves": "curves", "post_curves": "curves"}
        return "+".join(words.get(n, n) for n in self.stages()) or "identity"


FULL = Structure(True, True, True, True, True)
COLOUR = Structure(True, True, True, False, False)
NOTHING = Structure(*(False for _ in fields(Structure)))


class Model:
    """Parameter vector <-> stages, and the float surrogate of the recipe."""

    def __init__(self, structure: Structure):
        self.s = structure
        self.slices = {}
        n = 0
        for name, kind in STAGES.items():
            if getattr(structure, name):
                self.slices[name] = slice(n, n + kind.size)
                n += kind.size
        self.size = n

    def initial(self):
        """Initial parameters (the identity recipe) and their lower and upper bounds."""
        p = np.zeros(self.size)
        lo, hi = np.full(self.size, -np.inf), np.full(self.size, np.inf)
        for name, sl in self.slices.items():
            p[sl], lo[sl], hi[sl] = STAGES[name].bounds()
        return p, lo, hi

    def forward(self, p, samples, jacobian=False):
        """Surrogate output (N, 3) in [0, 1] and, if asked, its Jacobian (N, 3, P)."""
        x = samples.rgb / 255.0
        jac = np.zeros((len(x), 3, self.size)) if jacobian else None
        for name in self.s.stages():
            sl = self.slices[name]
            x, jac = STAGES[name].forward(p[sl], x, samples.pos, jac, sl.start)
        return (x, jac) if jacobian else x

    def regularisation(self, p, strength):
        """Residuals that keep the recipe small and smooth where data is thin."""
        res = []
        for name, sl in self.slices.items():
            res += STAGES[name].residuals(p[sl], strength)
        return np.concatenate(res) if res else np.zeros(0)

    def ops(self, p, digits=1):
        """The recipe ops of parameters `p` (knots rounded to `digits`)."""
        return [STAGES[name].op(p[self.slices[name]], digits) for name in self.s.stages()]
