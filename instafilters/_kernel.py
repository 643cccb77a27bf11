"""The numba kernels (steps.Lut, fused.ToneTable), in their own module so that numba is
imported (0.3 s) only when a filter first runs, never by `import instafilters`. Compiled on first call
and cached on disk (numba's cache: beside this file, or the user's cache folder when the
package folder is read-only), so a fresh process loads it in well under a second."""
import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def lookup(values, rows, table, out):
    """out[p, c] = table[rows[p] * 768 + c * 256 + values[p, c]] for every pixel p: a plain
    gather, so it equals fused.py's cv2 and numpy forms exactly. `out` may be `values`."""
    n = rows.size
    v = values.reshape(n, 3)
    o = out.reshape(n, 3)
    r = rows.reshape(n)
    for p in range(n):
        base = np.int64(r[p]) * 768
        o[p, 0] = table[base + v[p, 0]]
        o[p, 1] = table[base + 256 + v[p, 1]]
        o[p, 2] = table[base + 512 + v[p, 2]]
    return out


@numba.njit(cache=True, nogil=True)
def lut(values, table, out):
    """out[p, c] = table[c * 256 + values[p, c]]: cv2.LUT with a per-channel table, which
    OpenCV runs 2-3x slower (0.22 vs 0.67 ms at 500x375). `out` may be `values`."""
    v = values.reshape(-1)
    o = out.reshape(-1)
    for q in range(0, v.size, 3):
        o[q] = table[v[q]]
        o[q + 1] = table[256 + v[q + 1]]
        o[q + 2] = table[512 + v[q + 2]]
    return out
