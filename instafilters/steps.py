"""The steps a compiled filter runs (compile.py chooses and builds them).

Every step is `step(img, dst) -> dst`: it writes its uint8 result into `dst`, which may be
`img` itself (all steps are point-wise in space, so in-place is safe). Spatial steps cache
their per-size maps (ImageNet has a few dominant sizes).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import cv2
import numpy as np

from . import ops as _ops
from .cvutil import numba_kernels, scratch
from .cvutil import to_uint8 as _to_uint8
from .recipe import Op

RAMP = np.repeat(np.linspace(0.0, 1.0, 256, dtype=np.float32)[:, None], 3, axis=1)
MASK_CACHE_SIZE = 64  # ImageNet has a few dominant sizes (500x375, 375x500, 500x333, ...)


@dataclass(frozen=True)
class Lut:
    """Per-channel 1-D lookup table, shape (256, 1, 3) uint8 (or uint16, for LutMatrix)."""
    table: np.ndarray
    planar: np.ndarray = field(init=False, repr=False, compare=False)  # (3 * 256,)

    def __post_init__(self):
        planar = np.ascontiguousarray(self.table.reshape(256, 3).T).reshape(-1)
        object.__setattr__(self, "planar", planar)

    def __call__(self, img, dst):
        kernels = numba_kernels()
        if kernels is None:
            return cv2.LUT(img, self.table, dst=dst)
        return kernels.lut(img, self.planar, dst)


@dataclass(frozen=True)
class Matrix:
    """3x4 affine colour map in 0-255 units; cv2.transform rounds and saturates to uint8."""
    m: np.ndarray

    def __call__(self, img, dst):
        return cv2.transform(img, self.m, dst=dst)


class _SpatialStep:
    """Base for steps that need a per-size weight map; caches it per (height, width)."""

    def __init__(self):
        self.maps = lru_cache(maxsize=MASK_CACHE_SIZE)(self._make_maps)


class MaskBlend(_SpatialStep):
    """out = (1 - m) * x + m * effect(x), m a cached vignette mask."""

    def __init__(self, op: Op, effect: list):
        super().__init__()
        self.op, self.effect = op, effect

    def _make_maps(self, h, w):
        m = self.op.mask(h, w)
        return np.ascontiguousarray(1.0 - m), m

    def __call__(self, img, dst):
        keep, mix = self.maps(*img.shape[:2])
        effect = run(self.effect, img, scratch(img.shape, slot=1))
        return cv2.blendLinear(img, effect, keep, mix, dst=dst)


class MaskLut(_SpatialStep):
    """The same blend as MaskBlend in two passes instead of three: the mask, quantised to
    q = round(255 m), and the pixel form a 16-bit index q * 256 + x into one table holding
    x + q / 255 * (effect(x) - x) for every (q, x), the effect evaluated in float (no
    intermediate rounding). Needs OpenCV's 16-bit LUT (HAS_16BIT_LUT); 0.4 ms cheaper at
    500x375 than an effect LUT plus cv2.blendLinear."""

    def __init__(self, op: Op, before=()):
        """`before`: tone ops just ahead of the vignette, folded into the table for free."""
        super().__init__()
        self.op = op
        x = RAMP  # (256, 3) inputs in [0, 1]
        for tone_op in before:
            x = tone_op.clipped_tone(x).astype(np.float32)
        delta = np.clip(op.effect(x), 0, 1) - x
        q = np.arange(256, dtype=np.float32)[:, None, None] / 255.0
        table = _to_uint8((x[None] + q * delta[None]) * 255.0)  # (q, x, channel)
        self.table = np.ascontiguousarray(table.reshape(65536, 1, 3))

    def _make_maps(self, h, w):
        q = np.rint(self.op.mask(h, w) * 255.0).astype(np.uint16) * 256
        return np.ascontiguousarray(np.repeat(q[..., None], 3, axis=2))

    def __call__(self, img, dst):
        index = cv2.add(img, self.maps(*img.shape[:2]), dst=scratch(img.shape, np.uint16, 8),
                        dtype=cv2.CV_16U)
        return cv2.LUT(index, self.table, dst=dst)


def one_pass_vignette(op: Op) -> bool:
    """A vignette blending a solid colour (no curves) in normal or multiply mode: one cv2
    pass over a cached map, GainVignette or ColourVignette (compile_spatial picks which),
    cheaper than any table form."""
    return not op.params["curves"] and op.params["mode"] in ("normal", "multiply")


class GainVignette(_SpatialStep):
    """A vignette that multiplies by a colour (mode multiply, or normal with black): then
    out = x * (1 - m * (1 - c)), one cv2.multiply by a cached gain map instead of an effect
    LUT plus a blend (about 2.5x cheaper, and only one rounding)."""

    def __init__(self, op: Op):
        super().__init__()
        self.op = op
        # normal mode here means black: the effect is 0, i.e. a multiply by black
        multiplier = op.params["color"] if op.params["mode"] == "multiply" else (0.0, 0.0, 0.0)
        self.darkening = 1.0 - np.asarray(multiplier, np.float32)

    def _make_maps(self, h, w):
        m = self.op.mask(h, w)[..., None]
        return np.ascontiguousarray(1.0 - m * self.darkening, dtype=np.float32)

    def __call__(self, img, dst):
        return cv2.multiply(img, self.maps(*img.shape[:2]), dst=dst, dtype=cv2.CV_8U)


class ColourVignette(_SpatialStep):
    """A vignette towards a solid colour in normal mode: blend with a cached colour layer,
    no effect LUT needed."""

    def __init__(self, op: Op):
        super().__init__()
        self.op = op
        self.colour = _to_uint8(np.asarray(op.params["color"]) * 255.0)

    def _make_maps(self, h, w):
        m = self.op.mask(h, w)
        layer = np.empty((h, w, 3), np.uint8)
        layer[:] = self.colour
        return np.ascontiguousarray(1.0 - m), m, layer

    def __call__(self, img, dst):
        keep, mix, layer = self.maps(*img.shape[:2])
        return cv2.blendLinear(img, layer, keep, mix, dst=dst)


class GradientBlend(_SpatialStep):
    """Gradient blend in a mode affine in the source colour: the blend of the gradient is
    the gradient of per-stop blends, so out = sum_k w_k(x, y) * lut_k(x)."""

    def __init__(self, op: Op, stop_luts: list):
        super().__init__()
        self.op, self.stop_luts = op, stop_luts

    def _make_maps(self, h, w):
        g = self.op.params["gradient"]
        return _ops.gradient_weights(self.op.gradient_position(h, w), [s[0] for s in g["stops"]])

    def __call__(self, img, dst):
        weights = self.maps(*img.shape[:2])
        layers = [lut(img, scratch(img.shape, slot=2 + k)) for k, lut in enumerate(self.stop_luts)]
        if len(layers) == 2:
            return cv2.blendLinear(layers[0], layers[1], weights[0], weights[1], dst=dst)
        acc = sum(w[..., None] * layer.astype(np.float32) for w, layer in zip(weights, layers))
        dst[...] = _to_uint8(acc)
        return dst


@dataclass(frozen=True)
class FloatFallback:
    """Slow float evaluation of one spatial op (~10x a LUT pass), for gradient blends in
    modes that are not affine in the source (soft-light, darken, ...), where no LUT
    decomposition is exact."""
    op: Op

    def __call__(self, img, dst):
        dst[...] = _to_uint8(np.clip(self.op.spatial(img.astype(np.float32) / 255.0), 0, 1) * 255.0)
        return dst


def run(steps, img, dst):
    """Apply `steps` to `img`, writing into `dst` (the first step reads `img`, the rest work
    in place). With no steps, `dst` receives a copy of `img`."""
    if not steps:
        np.copyto(dst, img)
    for step in steps:
        img = step(img, dst)
    return dst


def _matrix_255(affine):
    m = np.array(affine, dtype=np.float64)
    m[:, 3] *= 255.0
    return m.astype(np.float32)


@dataclass(frozen=True)
class LutMatrix:
    """A LUT feeding a matrix, kept at 16-bit precision in between: the LUT writes x * 256
    to uint16 and the matrix reads it back, so the LUT output is not rounded to 8 bits
    before the matrix amplifies that rounding (cv2.transform saturates negatives to 0)."""
    lut: Lut           # (256, 1, 3) uint16, value * 256
    m: np.ndarray      # 3x4 float32, 3x3 part divided by 256, offset in 0-255

    @classmethod
    def build(cls, table, affine):
        lut16 = np.clip(np.rint(table * 255.0 * 256.0), 0, 65535).astype(np.uint16)
        m = _matrix_255(affine)
        m[:, :3] /= 256.0
        return cls(Lut(lut16.reshape(256, 1, 3)), m)

    def __call__(self, img, dst):
        wide = self.lut(img, scratch(img.shape, np.uint16, slot=9))
        wide = cv2.transform(wide, self.m, dst=wide)
        return cv2.convertScaleAbs(wide, dst=dst)
