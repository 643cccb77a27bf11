"""Recipe -> fused pipeline, built once per filter.

Consecutive point-wise ops collapse to the cheapest exact form (single core, 500x375, with
reused buffers, on the development machine): per-channel tone ops compose into one 1-D LUT
(`cv2.LUT`, ~0.35 ms) and colour matrices multiply into one 3x4 (`cv2.transform`, ~0.12 ms).
Every blend mode shipped is separable, so no 3-D LUT is needed (Pillow's Color3DLUT is
~15x slower than a 1-D LUT). What follows a filter's last matrix, tone ops and vignettes
sharing a centre (every bundled vignette filter), is one table lookup per pixel
(fused.ToneTable: amaro 3.8 -> 0.85 ms). Other spatial ops become maps computed once per
image size and cached: darkening vignettes a gain map (`cv2.multiply`), tone-dependent
vignettes one 16-bit LUT indexed by (mask level, pixel) on OpenCV 5 (`MaskLut`, else LUT +
`cv2.blendLinear`), gradients per-stop LUTs and weights. Where an 8-bit intermediate would
drift too far from `FilterRecipe.evaluate` (checked on a probe image at compile time), a LUT
feeding a matrix runs at 16 bits. tests/test_compile.py checks every bundled filter on
random images: at most 2 grey levels, 0.5 on average.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from .cvutil import HAS_16BIT_LUT
from .cvutil import to_uint8 as _to_uint8
from .fused import ToneTable, split_tail
from .ops.blend import AFFINE_IN_SOURCE
from .recipe import FilterRecipe, Op
from .steps import (RAMP, ColourVignette, FloatFallback, GainVignette, GradientBlend, Lut,
                    LutMatrix, MaskBlend, MaskLut, Matrix, _matrix_255, one_pass_vignette, run)

__all__ = ["CompiledFilter", "compile", "choose_steps", "compile_steps", "exact_enough",
           "HAS_16BIT_LUT", "ColourVignette", "FloatFallback", "GainVignette", "GradientBlend",
           "Lut", "LutMatrix", "MaskBlend", "MaskLut", "Matrix", "ToneTable", "run"]


def compile_point_ops(point_ops, wide: bool = False) -> list:
    """Fuse a run of tone and matrix ops: tone after tone -> one LUT, matrix after matrix ->
    one matrix. Composition is done in float on the 256 inputs, so nothing is rounded twice.
    `wide` keeps a LUT feeding a matrix at 16 bits (one pass more, less rounding)."""
    stages: list = []  # ("lut", float (256, 3) table) or ("matrix", float 3x4)
    for op in point_ops:
        if op.kind == "tone":
            base = stages.pop()[1] if stages and stages[-1][0] == "lut" else RAMP
            stages.append(("lut", op.clipped_tone(base).astype(np.float32)))
        else:
            m = op.matrix()
            if stages and stages[-1][0] == "matrix":
                m = _compose(m, stages.pop()[1])
            stages.append(("matrix", m))
    stages = [s for s in stages if not _is_identity(*s)]
    steps = []
    while stages:
        kind, value = stages.pop(0)
        if wide and kind == "lut" and stages and stages[0][0] == "matrix":
            steps.append(LutMatrix.build(value, stages.pop(0)[1]))
        elif kind == "lut":
            steps.append(Lut(_to_uint8(value * 255.0).reshape(256, 1, 3)))
        else:
            steps.append(Matrix(_matrix_255(value)))
    return steps


def _compose(outer, inner):
    """3x4 affine maps: outer(inner(x))."""
    m = outer[:, :3] @ inner[:, :3]
    t = outer[:, :3] @ inner[:, 3] + outer[:, 3]
    return np.hstack([m, t[:, None]])


def _is_identity(kind, value):
    if kind == "lut":
        return np.array_equal(_to_uint8(value * 255.0), _to_uint8(RAMP * 255.0))
    return np.allclose(value, np.hstack([np.eye(3), np.zeros((3, 1))]), atol=1e-7)


def _uses_mask_lut(op: Op) -> bool:
    return HAS_16BIT_LUT and op.name == "vignette" and not one_pass_vignette(op)


def compile_spatial(op: Op):
    """A spatial op's step (tone vignettes on OpenCV 5 are built by compile_steps, which
    folds the tone ops before them into the MaskLut)."""
    if op.name == "vignette":
        if one_pass_vignette(op):  # a multiply, or normal towards black, is a gain map
            gain = op.params["mode"] == "multiply" or not any(op.params["color"])
            return GainVignette(op) if gain else ColourVignette(op)
        return MaskBlend(op, compile_point_ops([_FunctionTone(op.effect)]))
    if op.params["mode"] in AFFINE_IN_SOURCE:
        stop_luts = []
        for _, colour in op.params["gradient"]["stops"]:
            solid = Op("blend", "tone", {"color": colour, "mode": op.params["mode"],
                                         "opacity": op.params["opacity"]})
            steps = compile_point_ops([solid])
            stop_luts.append(steps[0] if steps else _identity_lut())
        return GradientBlend(op, stop_luts)
    return FloatFallback(op)


@dataclass(frozen=True)
class _FunctionTone:
    """Adapter: a per-channel function seen as a tone op by compile_point_ops."""
    fn: object
    kind: str = "tone"

    def tone(self, x):
        return self.fn(x)

    clipped_tone = Op.clipped_tone


def _identity_lut():
    return Lut(np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1).reshape(256, 1, 3))


def compile_steps(recipe: FilterRecipe, wide: bool = False, table=None) -> list:
    """The steps of `recipe`; `table`: its ToneTable if already built (it is the same for
    the 8- and 16-bit forms)."""
    split = split_tail(recipe.ops)
    if split is not None:
        try:
            return compile_point_ops(split[0], wide) + [table or ToneTable(split[1])]
        except ValueError:  # too many weight combinations for one table
            pass
    steps, run_ops = [], []
    for op in recipe.ops:
        if op.kind == "spatial" and _uses_mask_lut(op):
            split = len(run_ops)  # trailing tone ops fold into the vignette's table
            while split and run_ops[split - 1].kind == "tone":
                split -= 1
            steps += compile_point_ops(run_ops[:split], wide)
            steps.append(MaskLut(op, before=run_ops[split:]))
            run_ops = []
        elif op.kind == "spatial":
            steps += compile_point_ops(run_ops, wide)
            run_ops = []
            steps.append(compile_spatial(op))
        else:
            run_ops.append(op)
    return steps + compile_point_ops(run_ops, wide)


# How far a compiled filter may drift from `FilterRecipe.evaluate` on the probe images
# (tests/test_compile.py allows 2 and 0.5 grey levels on other random images). The fitter
# rejects candidates beyond it, and `choose_steps` keeps the 8-bit form only within it.
PROBE_MAX_ERROR, PROBE_MEAN_ERROR = 1.8, 0.45


@lru_cache(maxsize=1)
def _probe_images():
    rng = np.random.default_rng(0)
    return tuple(rng.integers(0, 256, (97, 131, 3), dtype=np.uint8) for _ in range(3))


def exact_enough(steps, recipe: FilterRecipe) -> bool:
    """Whether `steps` stay within the probe bounds of the float reference."""
    for probe in _probe_images():
        err = np.abs(run(steps, probe, np.empty_like(probe))
                     - recipe.evaluate(probe / 255.0) * 255.0)
        if err.max() > PROBE_MAX_ERROR or err.mean() > PROBE_MEAN_ERROR:
            return False
    return True


def choose_steps(recipe: FilterRecipe) -> list:
    """The cheaper 8-bit steps if they are exact enough, else the 16-bit LUT->matrix form."""
    fast = compile_steps(recipe, wide=False)
    table = fast[-1] if fast and isinstance(fast[-1], ToneTable) else None
    wide = compile_steps(recipe, wide=True, table=table)
    if len(fast) == len(wide) or exact_enough(fast, recipe):
        return fast
    return wide


class CompiledFilter:
    """A filter ready to run: `f(rgb_uint8_array, strength=1.0) -> rgb_uint8_array`."""

    def __init__(self, recipe: FilterRecipe):
        self.recipe = recipe
        self.steps = choose_steps(recipe)

    name = property(lambda self: self.recipe.name)
    aliases = property(lambda self: self.recipe.aliases)
    description = property(lambda self: self.recipe.description)

    def __repr__(self):
        kinds = ", ".join(type(s).__name__ for s in self.steps) or "identity"
        return f"<CompiledFilter {self.name}: {kinds}>"

    def __call__(self, image, strength: float = 1.0, out=None):
        """Filter an HxWx3 uint8 RGB array. `out` (same shape, uint8, not `image`) lets a
        caller that encodes each result at once reuse one buffer instead of allocating."""
        img = np.ascontiguousarray(image)
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"expected an HxWx3 uint8 RGB array, got {img.dtype} {img.shape}")
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"strength must be in [0, 1], got {strength}")
        if out is None:
            out = np.empty_like(img)
        elif out.shape != img.shape or out.dtype != np.uint8 or np.shares_memory(out, img):
            raise ValueError("out must be a separate uint8 array of the image's shape")
        if img.size == 0:  # an empty image filters to an empty image (OpenCV would raise)
            return out
        run(self.steps if strength > 0.0 else [], img, out)
        if 0.0 < strength < 1.0:
            cv2.addWeighted(img, 1.0 - strength, out, strength, 0.0, dst=out)
        return out


def compile(recipe: FilterRecipe) -> CompiledFilter:  # noqa: A001 - the brief's name
    return CompiledFilter(recipe)
