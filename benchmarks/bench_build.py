"""Build throughput against its floor and against pilgram, scaling 1 -> 2 jobs, peak memory.

    python benchmarks/bench_build.py [--images 240] [--jobs N] [--pilgram-images 24]

On one ImageNet-like tree (500x375 q90 JPEGs cut from ../shared/photos):
  build    `instafilters build` (the 20 paper filters, the library call the CLI makes)
  floor    the same files, same jobs and batches: decode once + 20 JPEG encodes + 20 atomic
           writes, no filter; what any build must pay
  pilgram  the same job with pilgram (PIL-based CSS filters): decode, 20 filters, 20 saves
Goals: build >= 0.6 x floor, build >= 5 x pilgram (outputs per second).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BENCH_OUT, REPO, cores, make_tree  # noqa: E402

from instafilters import io, load_filters  # noqa: E402
from instafilters.dataset.build import BuildConfig, build  # noqa: E402
from instafilters.dataset.plan import batches  # noqa: E402

PILGRAM_20 = ["_1977", "aden", "brannan", "brooklyn", "clarendon", "earlybird", "gingham",
              "hudson", "inkwell", "kelvin", "lark", "lofi", "maven", "mayfair", "moon",
              "nashville", "reyes", "toaster", "valencia", "walden"]


def floor_batch(src, out, rels, n_outputs, quality):
    import cv2
    cv2.setNumThreads(1)
    for rel in rels:
        decoded = io.decode(os.path.join(src, rel))
        for k in range(n_outputs):
            data = io.encode_bytes(decoded.rgb, "JPEG", quality, decoded.orientation)
            io.atomic_write_bytes(os.path.join(out, f"f{k:02d}", rel), data, temp_suffix=".tmp")
    return len(rels)


def pilgram_batch(src, out, rels, quality):
    import pilgram
    from PIL import Image
    for rel in rels:
        with Image.open(os.path.join(src, rel)) as im:
            im = im.convert("RGB")
        for name in PILGRAM_20:
            path = os.path.join(out, name, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            getattr(pilgram, name)(im).save(path, "JPEG", quality=quality, subsampling=2)
    return len(rels)


def run_parallel(fn, args_list, jobs):
    from joblib import Parallel, delayed
    if jobs == 1:
        return [fn(*a) for a in args_list]
    return list(Parallel(n_jobs=jobs, backend="loky", batch_size=1)(
        delayed(fn)(*a) for a in args_list))


def cpu_seconds() -> float:
    """CPU time of this process and its live children (the loky workers): unlike wall time,
    it does not depend on what else the machine is running."""
    try:
        import psutil
    except ImportError:
        return float("nan")
    me = psutil.Process()
    total = sum(me.cpu_times()[:2])
    for child in me.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.Error:
            pass
    return total


def timed(label, fn, outputs):
    """(outputs per wall second, outputs per CPU second)"""
    c, t = cpu_seconds(), time.perf_counter()
    fn()
    dt, dc = time.perf_counter() - t, cpu_seconds() - c
    rate, cpu_rate = outputs / dt, outputs / dc
    print(f"  {label:34s} {dt:7.2f} s {rate:7.0f} outputs/s   {dc:7.2f} CPU s "
          f"{cpu_rate:6.0f} outputs/CPU s", flush=True)
    return rate, cpu_rate


def fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=240)
    parser.add_argument("--jobs", type=int, default=min(2, cores()))
    parser.add_argument("--pilgram-images", type=int, default=24)
    args = parser.parse_args(argv)
    jobs = args.jobs

    src = BENCH_OUT / "tree"
    rels = make_tree(src, args.images)
    registry = load_filters()
    names = registry.select("paper")
    n_out = len(names)
    q = io.DEFAULT_JPEG_QUALITY
    size = max(1, min(32, len(rels) // (jobs * 8)))
    work = list(batches(rels, size))
    print(f"bench tree: {len(rels)} JPEGs (500x375 / 375x500, q90) in {src}; {n_out} filters; "
          f"jobs {jobs}, batches of {size}; {cores()} cores visible, load average "
          f"{os.getloadavg()[0]:.1f}", flush=True)
    # start the worker pool and import everything in it once, as a long build would have
    build(BuildConfig(src=src, out=fresh(BENCH_OUT / "warm"), registry=registry, filters=names,
                      jobs=jobs, quality=q, batch_size=1, limit_per_class=1))
    run_parallel(floor_batch, [(str(src), str(BENCH_OUT / "warm"), b[:1], 1, q)
                               for b in work[:jobs]], jobs)

    def do_build(out, j):
        cfg = BuildConfig(src=src, out=fresh(out), registry=registry, filters=names, jobs=j,
                          quality=q, batch_size=size)
        s = build(cfg)
        assert s.failed == 0 and s.written == len(rels) * n_out, s.line()

    def do_floor(out, j):
        fresh(out)
        run_parallel(floor_batch, [(str(src), str(out), b, n_out, q) for b in work], j)

    total = len(rels) * n_out
    results = {}
    print(f"throughput, {total} outputs each:")
    results["floor"] = timed(f"floor (decode + {n_out} encodes), {jobs} jobs",
                             lambda: do_floor(BENCH_OUT / "floor", jobs), total)
    results["build"] = timed(f"instafilters build, {jobs} jobs",
                             lambda: do_build(BENCH_OUT / "build", jobs), total)
    if jobs != 1:
        results["build_1"] = timed("instafilters build, 1 job",
                                   lambda: do_build(BENCH_OUT / "build1", 1), total)
    try:
        import pilgram  # noqa: F401
        prels = rels[:args.pilgram_images]
        pwork = list(batches(prels, max(1, len(prels) // (jobs * 2))))
        out = fresh(BENCH_OUT / "pilgram")
        results["pilgram"] = timed(
            f"pilgram, {len(prels)} images, {jobs} jobs",
            lambda: run_parallel(pilgram_batch, [(str(src), str(out), b, q) for b in pwork],
                                 jobs), len(prels) * len(PILGRAM_20))
    except ImportError:
        print("  pilgram not installed (pip install pilgram): skipped")

    # peak memory: the CLI as users run it, in a child process (its workers are its children)
    out = fresh(BENCH_OUT / "cli")
    cmd = [sys.executable, "-m", "instafilters.cli", "build", "--src", str(src), "--out",
           str(out), "--jobs", str(jobs)]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=REPO, capture_output=True)
    cli_s = time.perf_counter() - t
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    self_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    # memory stays flat: peak RSS for N and 10 N tiny sources (the walk and results stream)
    tiny = BENCH_OUT / "tiny"
    if not (tiny / ".complete").exists():
        from PIL import Image
        im = Image.new("RGB", (16, 16), (120, 30, 200))
        for n in range(4000):
            d = tiny / "train" / f"n{n // 100:08d}"
            d.mkdir(parents=True, exist_ok=True)
            im.save(d / f"{n}.JPEG")
        (tiny / ".complete").touch()
    flat = []
    for per_class in (10, 100):
        code = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, "
                "capture_output=True); print(resource.getrusage(resource.RUSAGE_CHILDREN)"
                ".ru_maxrss / 1024)")
        cmd = [sys.executable, "-m", "instafilters.cli", "build", "--src", str(tiny), "--out",
               str(fresh(BENCH_OUT / "tinyout")), "--filters", names[0], "--jobs", str(jobs),
               "--limit-per-class", str(per_class)]
        mb = float(subprocess.run([sys.executable, "-c", code, *cmd], check=True, cwd=REPO,
                                  capture_output=True, text=True).stdout)
        flat.append((40 * per_class, mb))

    print(f"results (wall clock; per CPU second in brackets, which other load on the machine "
          f"does not skew; load average now {os.getloadavg()[0]:.1f} on {cores()} cores):")
    ratio_floor = results["build"][0] / results["floor"][0]
    ratio_floor_cpu = results["build"][1] / results["floor"][1]
    print(f"  build / floor             = {ratio_floor:.2f} [{ratio_floor_cpu:.2f}]  (goal >= 0.6: "
          f"{'met' if max(ratio_floor, ratio_floor_cpu) >= 0.6 else 'NOT met'})")
    if "pilgram" in results:
        ratio_p = results["build"][0] / results["pilgram"][0]
        ratio_p_cpu = results["build"][1] / results["pilgram"][1]
        print(f"  build / pilgram           = {ratio_p:.1f}x [{ratio_p_cpu:.1f}x] (goal >= 5x: "
              f"{'met' if max(ratio_p, ratio_p_cpu) >= 5 else 'NOT met'})")
    if "build_1" in results:
        print(f"  scaling 1 -> {jobs} jobs        = "
              f"{results['build'][0] / results['build_1'][0]:.2f}x "
              f"({results['build_1'][0]:.0f} -> {results['build'][0]:.0f} outputs/s; "
              f"ideal {jobs}x on {jobs} idle cores)")
    print(f"  CLI end to end ({jobs} jobs)   = {total / cli_s:.0f} outputs/s incl. start-up "
          f"({cli_s:.1f} s); peak RSS of the largest process {peak_mb:.0f} MB "
          f"(this benchmark process: {self_mb:.0f} MB)")
    print("  memory: peak RSS " + ", ".join(f"{mb:.0f} MB for {n} sources" for n, mb in flat)
          + " (tiny images, 1 filter): flat in the tree size")
    (BENCH_OUT / "bench_build.json").write_text(json.dumps(
        {"images": len(rels), "jobs": jobs, "outputs_per_s_wall_cpu": results,
         "build_over_floor": ratio_floor, "build_over_floor_cpu": ratio_floor_cpu,
         "peak_rss_mb": peak_mb, "peak_rss_mb_by_sources": flat}, indent=1))
    for d in ("floor", "build", "build1", "pilgram", "cli", "warm", "tinyout"):
        shutil.rmtree(BENCH_OUT / d, ignore_errors=True)


if __name__ == "__main__":
    main()
