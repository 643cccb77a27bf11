"""Small shared pieces of the compiled filters: reusable buffers, rounding, OpenCV checks."""
from __future__ import annotations

import logging
import threading
from functools import lru_cache

import cv2
import numpy as np

_scratch = threading.local()


def scratch(shape, dtype=np.uint8, slot=0):
    """A per-thread reusable buffer: a fresh 500x375 array costs ~0.2 ms in page faults
    alone, as much as the op that fills it, so intermediates are never reallocated."""
    key = (tuple(shape), np.dtype(dtype).str, slot)
    buffers = _scratch.__dict__.setdefault("buffers", {})
    buf = buffers.get(key)
    if buf is None:
        if len(buffers) > 32:  # many image sizes: keep memory flat
            buffers.clear()
        buf = buffers[key] = np.empty(shape, dtype)
    return buf


def to_uint8(x):
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _has_16bit_lut() -> bool:
    """OpenCV 5 looks up 16-bit images in 65536-entry tables; 4.x only takes 8-bit input."""
    try:
        cv2.LUT(np.zeros((1, 1, 3), np.uint16), np.zeros((65536, 1, 3), np.uint8))
        return True
    except cv2.error:
        return False


HAS_16BIT_LUT = _has_16bit_lut()


@lru_cache(maxsize=1)
def numba_kernels():
    """The numba kernels (instafilters._kernel), imported on first use, or None without
    numba. Every kernel is a plain gather, so the OpenCV/numpy forms used without it give
    identical pixels (tests/test_fused.py)."""
    try:
        from . import _kernel
    except ImportError:
        return None
    except RuntimeError as e:  # numba found no writable cache folder (set NUMBA_CACHE_DIR)
        logging.getLogger(__name__).warning("numba kernels unavailable, using OpenCV: %s", e)
        return None
    return _kernel
