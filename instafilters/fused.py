"""Everything after a filter's last colour matrix, in one table lookup per pixel.

The bundled recipes are curves -> matrix -> curves, or curves -> matrix -> one or two
vignettes with curves (amaro: a darkening vignette and a central glow). After the matrix,
every op acts on each channel alone, given the vignette weights at the pixel; and the
vignettes of a filter share their centre and shape, so their weights are all functions of
one radial distance. Quantising each weight as steps.MaskLut does (round(255 m)) leaves
few distinct weight combinations along the radius (at most 256 per vignette, 511 for two),
so the whole tail becomes one table `T[row, channel, value]`, evaluated in float once per
filter (no rounding between the vignettes), and a per-size map from pixel to row.

Measured (one core, 500x375, medians, other jobs sharing the two cores): amaro went from
3.8 ms (LutMatrix, MaskLut, MaskLut) to 0.9-1.4 ms (Lut, Matrix, ToneTable). For the
lookup, a numba gather takes 0.40 ms, numpy's add + take 1.7 ms, OpenCV 5's 16-bit LUT
(the index built by cv2.add) 1.4 ms.

Why LUT, matrix and table stay three steps (benchmarks/bench_kernels.py, 2026-12-03, quiet
machine): one numba loop doing all three, hand-unrolled, takes 1.30-1.33 ms with the matrix
in 16-bit fixed point and 1.45-1.46 ms with the matrix folded into nine weighted tables,
against 0.81-0.85 ms for the steps. The gathers keep any such loop scalar, and nine scalar
multiply-adds per pixel cost more than a whole SIMD cv2.transform pass (0.10-0.14 ms); the
extra reads and writes of the image the steps make stay in the core's cache. Run-length
coding the table rows does not pay either (0.93-1.31 ms against 0.38 ms for the gather): the
row changes every 1.3-1.9 pixels along a scan line. So the matrix stays in OpenCV and numba
does the gathers (the LUT before it too: steps.Lut). numba is optional (the `fast` extra);
without it the lookup runs in OpenCV (up to 256 rows, OpenCV 5) or numpy, with identical
results: all are one gather.
"""
from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from . import ops
from .cvutil import HAS_16BIT_LUT, numba_kernels, scratch, to_uint8
from .recipe import Op
from .steps import MASK_CACHE_SIZE, RAMP, one_pass_vignette

ROWS_CACHE_SIZE = 8
MAX_ROWS = 1024  # three vignettes fit; beyond, the step-by-step form is used
_SAMPLES = 1 << 16  # radial distance sampled this finely to find the weight combinations


def split_tail(recipe_ops) -> tuple | None:
    """(ops up to the last matrix, the tail) if the tail is tone ops and vignettes sharing
    a centre and shape, with at least one vignette worth a table; else None."""
    last_matrix = max((i for i, op in enumerate(recipe_ops) if op.kind == "matrix"), default=-1)
    head, tail = list(recipe_ops[:last_matrix + 1]), list(recipe_ops[last_matrix + 1:])
    vignettes = [op for op in tail if op.kind == "spatial"]
    if any(op.kind == "spatial" for op in head) or not vignettes:
        return None
    if any(op.name != "vignette" for op in vignettes):
        return None
    if len({(tuple(op.params["center"]), op.params["shape"]) for op in vignettes}) > 1:
        return None
    if len(vignettes) == 1 and one_pass_vignette(vignettes[0]):
        return None  # steps.GainVignette / ColourVignette: one cheap cv2 pass already
    return head, tail


class ToneTable:
    """A step (`step(img, dst) -> dst`, see steps.py) applying the tail ops."""

    def __init__(self, tail):
        self.tail = tail
        self.vignettes = [op for op in tail if op.kind == "spatial"]
        p = self.vignettes[0].params
        self.center, self.shape = tuple(p["center"]), p["shape"]
        # no pixel is farther from the centre than this (ellipse and circle alike)
        self.max_distance = 2.0 * max(self.center[0], 1 - self.center[0],
                                      self.center[1], 1 - self.center[1])
        distance = np.linspace(0.0, self.max_distance, _SAMPLES)
        levels = np.stack([np.rint(_weight(op, distance) * 255.0).astype(np.int64)
                           for op in self.vignettes])  # (vignettes, samples)
        key = sum(level << (8 * i) for i, level in enumerate(levels))
        unique, self.sample_row = np.unique(key, return_inverse=True)
        if len(unique) > MAX_ROWS:
            raise ValueError(f"{len(unique)} weight combinations, more than {MAX_ROWS}")
        self.sample_row = self.sample_row.astype(np.uint16)
        # each row's weight levels (0..255, weight = level / 255), one column per vignette
        self.levels = np.stack([(unique >> (8 * i)) & 255 for i in range(len(self.vignettes))],
                               axis=1)
        self.table = np.ascontiguousarray(self._evaluate().transpose(0, 2, 1)).reshape(-1)
        # a new size costs ~0.3 ms per filter once _samples has it: a few sizes suffice here
        self.rows = lru_cache(maxsize=ROWS_CACHE_SIZE)(self._rows)
        self.cv2_index = lru_cache(maxsize=ROWS_CACHE_SIZE)(self._cv2_index)
        self._cv2_lut = None

    @property
    def row_count(self) -> int:
        return len(self.levels)

    def _evaluate(self):
        """(rows, 256, 3) uint8: the tail applied in float to every value, at every row's
        weights, as FilterRecipe.evaluate does (clipped between ops, not rounded). Each op
        runs once per distinct combination of the weights before it, not once per row:
        the first vignette's curves run on 256 values, not on 256 x rows (3x faster)."""
        x = RAMP[None]  # (groups, 256, 3); one group until the first vignette
        group = np.zeros(self.row_count, np.int64)  # each row's group
        k = 0
        for op in self.tail:
            if op.kind != "spatial":
                x = op.clipped_tone(x)
                continue
            effect = np.clip(op.effect(x), 0, 1)
            pairs, group = np.unique(group * 256 + self.levels[:, k], return_inverse=True)
            source, m = pairs // 256, (pairs % 256).astype(np.float32) / 255.0
            x = np.clip(x[source] + m[:, None, None] * (effect[source] - x[source]), 0, 1)
            k += 1
        return to_uint8(x[group] * 255.0)

    def _rows(self, h, w):
        """The table row of every pixel of an h x w image."""
        return self.sample_row[_samples(h, w, self.center, self.shape, self.max_distance)]

    def _cv2_index(self, h, w):
        """row * 256 per pixel and channel, for OpenCV's 16-bit LUT (rows <= 256)."""
        return np.ascontiguousarray(np.repeat(self.rows(h, w)[..., None] * 256, 3, axis=2))

    def _cv2_table(self):
        """The table as OpenCV's 65536-entry LUT, indexed by row * 256 + value."""
        if self._cv2_lut is None:
            padded = np.zeros((256, 256, 3), np.uint8)
            padded[:self.row_count] = self.table.reshape(-1, 3, 256).transpose(0, 2, 1)
            self._cv2_lut = padded.reshape(65536, 1, 3)
        return self._cv2_lut

    def backend(self, kernels) -> str:
        """The backend a call uses unless told one, given `numba_kernels()`."""
        if kernels is not None:
            return "numba"
        return "cv2" if HAS_16BIT_LUT and self.row_count <= 256 else "numpy"

    def __call__(self, img, dst, backend=None):
        h, w = img.shape[:2]
        kernels = numba_kernels()  # once per call: it is an import statement
        backend = backend or self.backend(kernels)
        if backend == "numba":
            return kernels.lookup(img, self.rows(h, w), self.table, dst)
        if backend == "cv2":
            index = cv2.add(img, self.cv2_index(h, w), dst=scratch(img.shape, np.uint16, 8),
                            dtype=cv2.CV_16U)
            return cv2.LUT(index, self._cv2_table(), dst=dst)
        flat = scratch(img.shape, np.int64, 10)
        np.multiply(self.rows(h, w)[..., None], np.int64(768), out=flat)  # not uint16 maths
        flat += _CHANNEL_OFFSET
        flat += img
        return np.take(self.table, flat, out=dst)

    def __repr__(self):
        return "ToneTable"


_CHANNEL_OFFSET = np.arange(3, dtype=np.int64) * 256


@lru_cache(maxsize=MASK_CACHE_SIZE)
def _samples(h, w, center, shape, max_distance):
    """Each pixel's radial distance as an index into the samples: shared by every filter
    with vignettes of this centre and shape (all the bundled ones), so a new image size
    pays the distance map (~2 ms at 500x375) once, not once per filter."""
    d = ops.radial_distance(h, w, center, shape)
    sample = np.rint(d * ((_SAMPLES - 1) / max_distance)).astype(np.int32)
    return np.clip(sample, 0, _SAMPLES - 1, out=sample)


def _weight(op: Op, distance):
    p = op.params
    return ops.vignette_weight(distance, p["radius"], p["softness"], p["strength"], p["invert"])
