"""Robustness metrics, pure numpy (no torch): top-k accuracy, agreement, feature divergence.

Predictions are the top-k class indices per image, shape (N, k), best first. Labels are the
classes a correct answer may be, shape (N, L) padded with -1: one column for a folder label,
several for multi-label sets (ImageNet-ReaL style); a row of -1 is an unlabelled image.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

UNLABELLED = -1


def as_label_matrix(labels) -> np.ndarray:
    """(N,) ints or (N, L) ints padded with -1 -> (N, L) int64."""
    labels = np.asarray(labels, dtype=np.int64)
    if labels.ndim == 1:
        labels = labels[:, None]
    if labels.ndim != 2:
        raise ValueError(f"expected labels of shape (N,) or (N, L), got {labels.shape}")
    return labels


def labelled_mask(labels) -> np.ndarray:
    """True where an image has at least one accepted class."""
    return (as_label_matrix(labels) >= 0).any(axis=1)


def topk_hits(topk, labels, k: int) -> np.ndarray:
    """Per image: is any of the first k predictions an accepted class? (N,) bool."""
    topk = np.asarray(topk, dtype=np.int64)
    labels = as_label_matrix(labels)
    if topk.ndim != 2 or topk.shape[0] != labels.shape[0]:
        raise ValueError(f"predictions {topk.shape} and labels {labels.shape} do not match")
    if not 1 <= k <= topk.shape[1]:
        raise ValueError(f"k={k} but only {topk.shape[1]} predictions per image")
    hit = (topk[:, :k, None] == labels[:, None, :]) & (labels[:, None, :] >= 0)
    return hit.any(axis=(1, 2))


def topk_accuracy(topk, labels, k: int) -> float | None:
    """Fraction of labelled images whose first k predictions contain an accepted class;
    None if no image is labelled."""
    mask = labelled_mask(labels)
    if not mask.any():
        return None
    return float(topk_hits(topk, labels, k)[mask].mean())


def agreement(pred_a, pred_b) -> float | None:
    """Fraction of images on which two top-1 predictions are the same class (label-free)."""
    a, b = np.asarray(pred_a), np.asarray(pred_b)
    a = a[:, 0] if a.ndim == 2 else a
    b = b[:, 0] if b.ndim == 2 else b
    if a.shape != b.shape:
        raise ValueError(f"predictions {a.shape} and {b.shape} do not match")
    return float((a == b).mean()) if a.size else None


def drop(clean: float | None, value: float | None) -> tuple[float | None, float | None]:
    """(absolute, relative) drop of `value` below `clean`: positive = worse than clean."""
    if clean is None or value is None:
        return None, None
    absolute = clean - value
    return absolute, (absolute / clean if clean > 0 else None)


# -- feature divergence (IBN-Net, Pan et al. 2018, Sec. 3 / Fig. 1) ----------------------------

@dataclass
class Moments:
    """Per-channel count, mean and sum of squared deviations, merged batch by batch
    (Chan et al.'s parallel update, float64): the data of one Gaussian per channel."""
    n: int
    mean: np.ndarray
    m2: np.ndarray

    @classmethod
    def empty(cls, channels: int) -> "Moments":
        return cls(0, np.zeros(channels), np.zeros(channels))

    @classmethod
    def of(cls, features) -> "Moments":
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2:
            raise ValueError(f"expected features of shape (N, C), got {x.shape}")
        mean = x.mean(axis=0) if len(x) else np.zeros(x.shape[1])
        return cls(len(x), mean, ((x - mean) ** 2).sum(axis=0))

    def update(self, features) -> "Moments":
        other = Moments.of(features)
        if other.n == 0:
            return self
        if self.mean.shape != other.mean.shape:
            raise ValueError(f"{other.mean.shape[0]} channels, expected {self.mean.shape[0]}")
        n = self.n + other.n
        delta = other.mean - self.mean
        self.mean = self.mean + delta * (other.n / n)
        self.m2 = self.m2 + other.m2 + delta ** 2 * (self.n * other.n / n)
        self.n = n
        return self

    @property
    def var(self) -> np.ndarray:
        """Maximum-likelihood (ddof=0) variance, the Gaussian fit."""
        if self.n == 0:
            raise ValueError("no samples")
        return self.m2 / self.n


def symmetric_kl_gaussian(mean_a, var_a, mean_b, var_b) -> np.ndarray:
    """KL(a||b) + KL(b||a) of 1-d Gaussians, elementwise:
    (var_a + d^2) / (2 var_b) + (var_b + d^2) / (2 var_a) - 1, with d = mean_a - mean_b."""
    mean_a, var_a, mean_b, var_b = (np.asarray(v, dtype=np.float64)
                                    for v in (mean_a, var_a, mean_b, var_b))
    d2 = (mean_a - mean_b) ** 2
    return (var_a + d2) / (2 * var_b) + (var_b + d2) / (2 * var_a) - 1.0


def feature_divergence(a, b, eps: float = 1e-8) -> float:
    """IBN-Net's feature divergence between two image sets at one layer.

    `a` and `b` are (N, C) spatially averaged activations (or their `Moments`). Per channel,
    fit a Gaussian to each set, take the symmetric KL divergence, average over channels.
    `eps` is added to every variance so that a channel constant in both sets (a dead ReLU)
    contributes 0 rather than 0/0.
    """
    ma = a if isinstance(a, Moments) else Moments.of(a)
    mb = b if isinstance(b, Moments) else Moments.of(b)
    if ma.mean.shape != mb.mean.shape:
        raise ValueError(f"{ma.mean.shape[0]} channels vs {mb.mean.shape[0]}")
    return float(symmetric_kl_gaussian(ma.mean, ma.var + eps, mb.mean, mb.var + eps).mean())
