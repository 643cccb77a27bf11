"""Why a vignette filter runs as three steps (Lut, Matrix, ToneTable) and not one loop.

    python benchmarks/bench_kernels.py [--repeat 25]

Issue 10 proposed running the per-channel LUT, the 3x4 matrix and the tail table of a filter
in one loop over the pixels (one read and one write of the image instead of three). This
times that idea in the forms tried, against the steps the compiler builds, on a 500x375
photo, one core, alternating, medians:

- steps: numba LUT gather, cv2.transform (SIMD), numba table gather (what ships);
- one loop, LUT gather + integer matrix (16-bit fixed point) + table gather;
- one loop, nine weighted-table gathers (matrix x LUT folded, 16-bit fixed point) + table;
- the table gather alone, and the same gather run-length coded over the pixel rows (the
  table row changes every 1-2 pixels along a scan line, so the runs are too short to pay).

The one-loop forms round the matrix their own way (cv2.transform's fixed-point SIMD rounding
cannot be reproduced), so they differ from the steps by a grey level or two where a steep
tail curve follows; the script prints by how much. Only speed is compared. Needs numba (the `fast` extra).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numba
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import make_tree  # noqa: E402

from instafilters import io, load_filters  # noqa: E402
from instafilters.cvutil import numba_kernels  # noqa: E402

SHIFT = 16  # fixed-point fraction bits of the one-loop matrices


@numba.njit(nogil=True)
def one_loop_multiply(values, luts, m, bias, rows, table, out):
    """Unrolled by hand: a loop over the three channels runs twice as slow."""
    n = rows.size
    v, o, r = values.reshape(n, 3), out.reshape(n, 3), rows.reshape(n)
    l0, l1, l2 = luts[0], luts[1], luts[2]
    m00, m01, m02, m10, m11, m12 = m[0, 0], m[0, 1], m[0, 2], m[1, 0], m[1, 1], m[1, 2]
    m20, m21, m22, b0, b1, b2 = m[2, 0], m[2, 1], m[2, 2], bias[0], bias[1], bias[2]
    for p in range(n):
        a0, a1, a2 = l0[v[p, 0]], l1[v[p, 1]], l2[v[p, 2]]
        y0 = min(max((m00 * a0 + m01 * a1 + m02 * a2 + b0) >> SHIFT, 0), 255)
        y1 = min(max((m10 * a0 + m11 * a1 + m12 * a2 + b1) >> SHIFT, 0), 255)
        y2 = min(max((m20 * a0 + m21 * a1 + m22 * a2 + b2) >> SHIFT, 0), 255)
        base = np.int32(r[p]) * 768
        o[p, 0], o[p, 1], o[p, 2] = table[base + y0], table[base + 256 + y1], table[base + 512 + y2]
    return out


@numba.njit(nogil=True)
def one_loop_tables(values, weighted, bias, rows, table, out):
    n = rows.size
    v, o, r = values.reshape(n, 3), out.reshape(n, 3), rows.reshape(n)
    w00, w01, w02, w10, w11, w12 = (weighted[0, 0], weighted[0, 1], weighted[0, 2],
                                    weighted[1, 0], weighted[1, 1], weighted[1, 2])
    w20, w21, w22, b0, b1, b2 = weighted[2, 0], weighted[2, 1], weighted[2, 2], bias[0], bias[1], bias[2]
    for p in range(n):
        x0, x1, x2 = v[p, 0], v[p, 1], v[p, 2]
        y0 = min(max((w00[x0] + w01[x1] + w02[x2] + b0) >> SHIFT, 0), 255)
        y1 = min(max((w10[x0] + w11[x1] + w12[x2] + b1) >> SHIFT, 0), 255)
        y2 = min(max((w20[x0] + w21[x1] + w22[x2] + b2) >> SHIFT, 0), 255)
        base = np.int32(r[p]) * 768
        o[p, 0], o[p, 1], o[p, 2] = table[base + y0], table[base + 256 + y1], table[base + 512 + y2]
    return out


@numba.njit(nogil=True)
def run_length_lookup(values, starts, bases, table, out):
    n = values.size // 3
    v, o = values.reshape(n, 3), out.reshape(n, 3)
    for k in range(bases.size):
        b = bases[k]
        t0, t1, t2 = table[b:b + 256], table[b + 256:b + 512], table[b + 512:b + 768]
        for p in range(starts[k], starts[k + 1]):
            o[p, 0], o[p, 1], o[p, 2] = t0[v[p, 0]], t1[v[p, 1]], t2[v[p, 2]]
    return out


def forms(f, rgb):
    """name -> zero-argument callable, all writing one output buffer, for the filter f
    (compiled as Lut, Matrix, ToneTable)."""
    lut, matrix, tail = f.steps
    h, w = rgb.shape[:2]
    rows = tail.rows(h, w)
    luts = lut.planar.reshape(3, 256).astype(np.int32)
    m = np.rint(matrix.m[:, :3].astype(np.float64) * (1 << SHIFT)).astype(np.int32)
    bias = np.rint((matrix.m[:, 3].astype(np.float64) + 0.5) * (1 << SHIFT)).astype(np.int32)
    weighted = np.rint(matrix.m[:, :3, None].astype(np.float64) * luts[None]
                       * (1 << SHIFT)).astype(np.int32)  # (out channel, in channel, value)
    flat = rows.reshape(-1).astype(np.int64)
    starts = np.concatenate([[0], np.flatnonzero(np.diff(flat)) + 1, [flat.size]])
    bases = flat[starts[:-1]] * 768
    kernels = numba_kernels()
    out = np.empty_like(rgb)
    return {
        "steps (shipped)": lambda: f(rgb, out=out),
        "one loop: LUT + int matrix + table": lambda: one_loop_multiply(
            rgb, luts, m, bias, rows, tail.table, out),
        "one loop: 9 weighted tables + table": lambda: one_loop_tables(
            rgb, weighted, bias, rows, tail.table, out),
        "table gather alone (shipped)": lambda: kernels.lookup(rgb, rows, tail.table, out),
        "table gather, run-length coded": lambda: run_length_lookup(
            rgb, starts, bases, tail.table, out),
    }, float(flat.size / bases.size)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=25)
    parser.add_argument("--filters", default="amaro,hudson,earlybird")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory() as tmp:
        rgb = io.decode(Path(tmp) / make_tree(Path(tmp), 1)[0]).rgb
    registry = load_filters()
    print(f"ms per {rgb.shape[1]}x{rgb.shape[0]} image, one core, median of {args.repeat} "
          f"alternating rounds of 10")
    for name in args.filters.split(","):
        f = registry[name]
        if [type(s).__name__ for s in f.steps] != ["Lut", "Matrix", "ToneTable"]:
            print(f"{name}: {f!r} is not Lut, Matrix, ToneTable: skipped")
            continue
        fns, mean_run = forms(f, rgb)
        results = {}
        for label, fn in fns.items():
            fn()
            results[label] = fn().copy()
        shipped = results["steps (shipped)"].astype(int)
        worst = {label: int(np.abs(results[label].astype(int) - shipped).max()) for label in
                 ("one loop: LUT + int matrix + table", "one loop: 9 weighted tables + table")}
        # a matrix value rounded one level apart, then a steep tail curve: a few levels at most
        assert max(worst.values()) <= 4, f"{name}: a one-loop form is wrong: {worst}"
        times = {label: [] for label in fns}
        for _ in range(args.repeat):
            for label, fn in fns.items():
                t = time.perf_counter()
                for _ in range(10):
                    fn()
                times[label].append((time.perf_counter() - t) / 10)
        print(f"{name} ({f.steps[-1].row_count} table rows, mean run {mean_run:.1f} pixels):")
        for label, ts in times.items():
            note = f"  (at most {worst[label]} grey levels from the steps)" if label in worst else ""
            print(f"  {label:38s} {np.median(ts) * 1e3:6.3f} ms{note}")


if __name__ == "__main__":
    main()
