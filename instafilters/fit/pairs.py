"""Fitting data: loading before/after pairs, checking they are pixel aligned, and sampling
them into (input colour, position, target Lab) samples."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import InstafiltersError
from ..fidelity import rgb_to_lab
from ..ops.spatial import pixel_position

PHOTO_STRIDE = 12  # 1080x885 -> 90x74 fitting samples (about 6.6k)
HALD_SAMPLES = 4000  # pattern colours used per Hald pair


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

    def reweighted(self, weight) -> "Samples":
        """The same samples with new weights, rescaled to the same total."""
        return Samples(self.rgb, self.pos, self.lab, weight * self.weight.sum() / weight.sum())


def _position(height, width, rows, cols):
    return np.stack(np.broadcast_arrays(*pixel_position(height, width, rows, cols)), axis=-1)


def load_image(image, label):
    """A path, PIL image or array -> uint8 RGB; errors name `label`."""
    from ..io import load_rgb
    try:
        return load_rgb(image)
    except InstafiltersError:
        raise
    except (ValueError, OSError) as e:
        raise InstafiltersError(f"{label}: {e}") from None


def load_pairs(pairs, label):
    """[(before, after, before name, after name)] of checked, pixel-aligned pairs."""
    loaded = []
    for i, pair in enumerate(pairs):
        if len(pair) != 2:
            raise InstafiltersError(f"{label} #{i + 1}: expected a (before, after) pair")
        b_name, a_name = (str(x) if isinstance(x, (str, Path)) else f"{label} #{i + 1} {w}"
                          for x, w in zip(pair, ("before", "after")))
        before, after = load_image(pair[0], b_name), load_image(pair[1], a_name)
        check_pair(before, after, b_name, a_name)
        loaded.append((before, after, b_name, a_name))
    return loaded


def check_pair(before, after, before_name, after_name):
    if before.shape != after.shape:
        raise InstafiltersError(
            f"{after_name}: size {after.shape[1]}x{after.shape[0]} does not match "
            f"{before_name} ({before.shape[1]}x{before.shape[0]}); pairs must be pixel aligned")
    if min(before.shape[:2]) < 16:
        raise InstafiltersError(f"{before_name}: image too small to fit ({before.shape[1]}x"
                                f"{before.shape[0]}, need at least 16x16)")
    shift = best_shift(before, after)
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


def best_shift(before, after, max_shift=3):
    """The (dy, dx) shift that best lines up the edges of the two images."""
    h, w = before.shape[:2]
    step = max(1, int(np.sqrt(h * w / 400_000.0)))  # about 400k pixels is plenty
    eb, ea = _edges(before[::step, ::step]), _edges(after[::step, ::step])
    m = max_shift
    core = eb[m:-m, m:-m]
    if core.size == 0:
        return (0, 0)
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
