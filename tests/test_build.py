"""`instafilters build`: real trees of real JPEGs, real CLI subprocesses, no mocks.

Most tests use a small fixed recipe file (--recipes-only), so they do not depend on the
bundled recipes, which are recalibrated from time to time; one test runs the bundled ones.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, write_imagenet_tree
from instafilters.dataset.plan import Shard, shard_of
from instafilters.tree import walk
from instafilters.io import TEMP_PREFIX

RECIPES = """\
version: 1
filters:
- name: warm
  set: paper
  description: LUT and vignette, like most Instagram filters.
  aliases: [warmish]
  ops:
  - {op: contrast, amount: 1.2}
  - {op: blend, color: [243, 106, 188], mode: screen, opacity: 0.3}
  - {op: vignette, radius: 0.5, softness: 0.6, strength: 0.4}
- name: cold
  set: paper
  description: Colour matrices only.
  ops:
  - {op: saturation, amount: 0.5}
  - {op: hue_rotate, degrees: 20}
"""
KEYS = ("warm", "cold")


@pytest.fixture(scope="module")
def recipes(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("recipes") / "test-filters.yaml"
    path.write_text(RECIPES)
    return path


def run_build(src, out, *args, recipes=None, check=None, timeout=120, env=None):
    """`instafilters build` in a subprocess; returns the CompletedProcess."""
    cmd = [sys.executable, "-m", "instafilters.cli", "build", "--src", str(src), "--out", str(out)]
    if recipes is not None:
        cmd += ["--recipes", str(recipes), "--recipes-only"]
    cmd += [str(a) for a in args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO,
                          env={**_env(), **(env or {})})
    if check is not None:
        assert proc.returncode == check, proc.stdout + proc.stderr
    return proc


def _env():
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("INSTAFILTERS_LOG_INTERVAL", None)
    return env


def tree_files(root) -> dict:
    """rel path -> bytes of every file under root, except the .instafilters folder."""
    root = Path(root)
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".instafilters"]
        for name in filenames:
            p = Path(dirpath) / name
            out[p.relative_to(root).as_posix()] = p.read_bytes()
    return out


def expected(rels, keys=KEYS) -> set:
    return {f"{k}/{r}" for k in keys for r in rels}


def manifest_lines(out) -> list:
    lines = []
    for path in sorted((Path(out) / ".instafilters").glob("manifest-*.jsonl")):
        for text in path.read_text().splitlines():
            record = json.loads(text)
            if "src" in record and "status" in record:
                lines.append(record)
    return lines


@pytest.fixture(scope="module")
def reference(tmp_path_factory, recipes):
    """One clean build of a tiny tree with the test recipes, for byte comparisons."""
    base = tmp_path_factory.mktemp("reference")
    rels = write_imagenet_tree(base / "src")
    run_build(base / "src", base / "out", "--jobs", "1", recipes=recipes, check=0)
    return base / "src", rels, tree_files(base / "out")


# ---------------------------------------------------------------- layout and summary
def test_layout_is_imagefolder_compatible_with_bundled_filters(imagenet_tree, tmp_path):
    src, rels = imagenet_tree
    out = tmp_path / "out"
    proc = run_build(src, out, "--filters", "toaster,1977", "--jobs", "2", check=0)
    files = tree_files(out)
    assert set(files) == expected(rels, ("toaster", "1977"))  # images only, names kept
    for rel in rels:
        with Image.open(out / "toaster" / rel) as im, Image.open(src / rel) as orig:
            assert (im.format, im.mode, im.size) == ("JPEG", "RGB", orig.size)
    # ImageFolder(<out>/toaster/val): one folder per class, the images inside
    classes = sorted(os.listdir(out / "toaster" / "val"))
    assert classes == sorted({r.split("/")[1] for r in rels if r.startswith("val/")})
    meta = sorted(p.name.split("-")[0] for p in (out / ".instafilters").iterdir())
    assert meta == ["build", "lock", "manifest", "run.json"]
    assert "done 12, skipped 0, failed 0 of 12 sources (24 files written, 2 non-image" \
        in proc.stdout
    assert not (out / "LICENSE").exists() and not (out / "toaster" / "LICENSE").exists()
    lines = manifest_lines(out)
    assert sorted(x["src"] for x in lines) == rels
    assert {(x["status"], x["outputs"]) for x in lines} == {("done", 2)}


def test_filter_aliases_and_output_equals_library_apply(imagenet_tree, tmp_path, recipes):
    from instafilters import io, load_filters
    src, rels = imagenet_tree
    run_build(src, tmp_path / "out", "--filters", "warmish", "--split", "val", "--jobs", "1",
              recipes=recipes, check=0)
    rel = [r for r in rels if r.startswith("val/")][0]
    decoded = io.decode(src / rel)
    want = io.encode_bytes(load_filters(recipes, merge=False)["warm"](decoded.rgb), "JPEG", 90)
    assert (tmp_path / "out" / "warm" / rel).read_bytes() == want


# ---------------------------------------------------------------- resume and crashes
def test_rerun_skips_finished_and_makes_missing(reference, tmp_path, recipes):
    src, rels, ref = reference
    out = tmp_path / "out"
    run_build(src, out, "--jobs", "2", recipes=recipes, check=0)
    missing = out / "cold" / rels[3]
    missing.unlink()
    stamps = {p: os.stat(out / p).st_mtime_ns for p in ref if p != f"cold/{rels[3]}"}
    proc = run_build(src, out, "--jobs", "2", recipes=recipes, check=0)
    assert f"done 1, skipped {len(rels) - 1}, failed 0" in proc.stdout
    assert "(1 files written" in proc.stdout
    assert tree_files(out) == ref
    assert all(os.stat(out / p).st_mtime_ns == t for p, t in stamps.items())  # not rewritten


def test_kill_9_mid_run_then_rerun_gives_identical_bytes(tmp_path, recipes):
    """A worker SIGKILLs the run's main process and itself after 5 outputs, in the middle of
    writing the 6th (INSTAFILTERS_TEST_CRASH_AFTER): the other worker is orphaned and must
    stop at once, and the next run must clean up and finish with identical bytes."""
    src = tmp_path / "src"
    write_imagenet_tree(src, classes=4, per_class=6, size=(640, 480))
    ref_out = tmp_path / "ref"
    run_build(src, ref_out, "--jobs", "1", recipes=recipes, check=0)
    ref = tree_files(ref_out)

    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "instafilters.cli", "build", "--src", str(src), "--out",
           str(out), "--recipes", str(recipes), "--recipes-only", "--jobs", "2",
           "--batch-size", "24"]  # each worker gets half the tree: much left to do at the kill
    proc = subprocess.Popen(cmd, cwd=REPO, env={**_env(), "INSTAFILTERS_TEST_CRASH_AFTER": "5"},
                            start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        assert proc.wait(timeout=60) == -signal.SIGKILL  # the main process, killed mid-run
        # the orphaned worker holds byte 1 of the run's marker until it exits
        fd = os.open(out / ".instafilters" / "running-s0of1", os.O_RDWR)
        deadline = time.monotonic() + 1.0
        while True:
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 1)
                break
            except OSError:
                assert time.monotonic() < deadline, "a worker outlived its run by 1 s"
                time.sleep(0.01)
        os.close(fd)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    partial = tree_files(out)
    time.sleep(0.5)
    assert tree_files(out) == partial  # nothing is written after the kill
    temps = [p for p in partial if Path(p).name.startswith(TEMP_PREFIX)]
    finished = [p for p in partial if p not in temps]
    assert len(temps) >= 1 and 5 <= len(finished) < len(ref), (len(temps), len(finished))
    for path in finished:  # everything under its final name is complete
        assert partial[path] == ref[path], path
    markers = list((out / ".instafilters").glob("running-*"))
    assert [m.name for m in markers] == ["running-s0of1"]

    proc = run_build(src, out, "--jobs", "2", recipes=recipes, check=0)
    assert f"removed {len(temps)} temporary file(s)" in proc.stderr
    assert tree_files(out) == ref
    assert not [p for p in out.rglob("*") if p.name.startswith(TEMP_PREFIX)]
    assert not list((out / ".instafilters").glob("running-*"))


def test_different_settings_refused_unless_overwrite(reference, tmp_path, recipes):
    src, rels, ref = reference
    out = tmp_path / "out"
    run_build(src, out, "--jobs", "1", recipes=recipes, check=0)

    proc = run_build(src, out, "--quality", "70", recipes=recipes, check=1)
    assert "--quality 90 -> 70" in proc.stderr and "--overwrite" in proc.stderr
    changed = tmp_path / "changed.yaml"
    changed.write_text(RECIPES.replace("amount: 1.2", "amount: 1.3"))
    proc = run_build(src, out, "--jobs", "1", recipes=changed, check=1)
    assert "recipe of 'warm' changed" in proc.stderr
    assert tree_files(out) == ref  # nothing touched by a refused run

    # --overwrite with new settings, interrupted after val: the later plain run must remake
    # train too (outputs older than the new settings are never kept)
    fresh = tmp_path / "fresh"
    run_build(src, fresh, "--quality", "70", "--jobs", "1", recipes=changed, check=0)
    run_build(src, out, "--quality", "70", "--overwrite", "--split", "val", "--jobs", "1",
              recipes=changed, check=0)
    proc = run_build(src, out, "--quality", "70", "--jobs", "1", recipes=changed, check=0)
    assert "skipped 6" in proc.stdout  # val is done, train is remade
    assert tree_files(out) == tree_files(fresh) != ref


# ---------------------------------------------------------------- bad inputs
def _png_bomb(path: Path, width=15_000, height=15_000):
    """A real PNG whose header claims 225 megapixels (IHDR patched, CRC fixed)."""
    Image.new("RGB", (8, 8)).save(path)
    data = bytearray(path.read_bytes())
    start = data.index(b"IHDR")
    data[start + 4:start + 12] = struct.pack(">II", width, height)
    data[start + 17:start + 21] = struct.pack(">I", zlib.crc32(bytes(data[start:start + 17])))
    path.write_bytes(bytes(data))


def _bad_tree(root: Path) -> dict:
    """name -> expected reason fragment (None: must convert fine)."""
    d = root / "val" / "n01440764"
    d.mkdir(parents=True)
    photo = Image.open(REPO / "instafilters/data/sample/val/n03877845/china.JPEG").convert("RGB")
    photo = photo.resize((96, 64))
    photo.save(d / "good.JPEG", quality=90)
    photo.convert("CMYK").save(d / "cmyk.JPEG", quality=95)
    photo.convert("L").save(d / "gray.JPEG", quality=90)
    photo.save(d / "png_inside.JPEG", "PNG")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    photo.save(d / "rotated.JPEG", quality=90, exif=exif.tobytes())
    full = (d / "good.JPEG").read_bytes()
    (d / "truncated.JPEG").write_bytes(full[: len(full) // 2])
    (d / "empty.JPEG").write_bytes(b"")
    (d / "html.JPEG").write_text("<html>404 Not Found</html>")
    _png_bomb(d / "bomb.png")
    os.symlink(d / "gone.JPEG", d / "dangling.JPEG")
    (d / "notes.txt").write_text("not an image, left alone")
    cases = {"good": None, "cmyk": None, "gray": None, "png_inside": None, "rotated": None,
             "truncated": "truncated", "empty": "empty file", "html": "not an image format",
             "bomb": "decompression bomb", "dangling": "no such file"}
    if os.geteuid() != 0:  # root reads anything
        (d / "locked.JPEG").write_bytes(full)
        (d / "locked.JPEG").chmod(0)
        cases["locked"] = "permission denied"
    return cases


def test_every_bad_input_is_converted_or_reported(tmp_path, recipes):
    src, out = tmp_path / "src", tmp_path / "out"
    cases = _bad_tree(src)
    proc = run_build(src, out, "--filters", "warm", "--strength", "0", "--jobs", "2",
                     recipes=recipes, check=1)
    bad = {k: v for k, v in cases.items() if v}
    err_lines = [x for x in proc.stderr.splitlines() if x.startswith("Error:")]
    assert err_lines == [f"Error: {len(bad)} of {len(cases)} sources failed; reasons in "
                         f"{next((out / '.instafilters').glob('failures-*.tsv'))}"]
    assert f"done {len(cases) - len(bad)}, skipped 0, failed {len(bad)}" in proc.stdout
    assert "1 non-image files left alone" in proc.stdout

    failures = next((out / ".instafilters").glob("failures-*.tsv")).read_text().splitlines()
    assert failures[0] == "source\treason"
    reasons = dict(line.split("\t") for line in failures[1:])
    ext = {"bomb": "png"}
    assert set(reasons) == {f"val/n01440764/{k}.{ext.get(k, 'JPEG')}" for k in bad}
    for k, fragment in bad.items():
        assert fragment in reasons[f"val/n01440764/{k}.{ext.get(k, 'JPEG')}"]

    d, o = src / "val" / "n01440764", out / "warm" / "val" / "n01440764"
    written = sorted(p.name for p in o.iterdir())
    assert written == sorted(f"{k}.JPEG" for k, v in cases.items() if v is None)
    for name in written:  # every output is a real RGB JPEG, whatever the source was
        with Image.open(o / name) as im:
            assert (im.format, im.mode) == ("JPEG", "RGB")
    # strength 0 writes the decoded pixels, so colours can be checked against Pillow's own
    for name, ref_mode in (("cmyk.JPEG", "CMYK"), ("gray.JPEG", "L"), ("png_inside.JPEG", "RGB")):
        got = np.asarray(Image.open(o / name), dtype=float)
        want = np.asarray(Image.open(d / name).convert("RGB"), dtype=float)
        assert Image.open(d / name).mode == ref_mode
        assert np.abs(got - want).mean() < 8.0, name  # JPEG re-encoding; inverted CMYK: ~100
    gray = np.asarray(Image.open(o / "gray.JPEG"), dtype=int)
    assert np.abs(gray[..., 0] - gray[..., 2]).max() <= 3  # still gray
    # EXIF rotation: stored pixels kept (what torchvision sees), the tag copied for viewers
    with Image.open(d / "rotated.JPEG") as s, Image.open(o / "rotated.JPEG") as r:
        assert r.size == s.size == (96, 64)
        assert r.getexif().get(0x0112) == 6
    assert not (out / "warm" / "val" / "n01440764" / "notes.txt").exists()


def test_strict_stops_at_the_first_failure(tmp_path, recipes):
    src = tmp_path / "src"
    rels = write_imagenet_tree(src, splits=("val",), classes=1, per_class=4, extras=False)
    (src / rels[0]).write_bytes(b"")  # the first source in walk order
    proc = run_build(src, tmp_path / "out", "--strict", "--jobs", "1", recipes=recipes,
                     check=1)
    assert "--strict: stopped at the first failure" in proc.stderr and "empty file" in proc.stderr
    assert len(list((tmp_path / "out" / "warm").rglob("*.JPEG"))) < len(rels) - 1


def _unshare_available() -> bool:
    if not shutil.which("unshare"):
        return False
    return subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _unshare_available(), reason="needs unshare -rm (mount namespaces)")
@pytest.mark.parametrize("case", ["read-only", "disk-full"])
def test_read_only_or_full_out_stops_with_one_message(tmp_path, recipes, case):
    """A private tmpfs mounted on --out (read-only, or 96 KB) in a mount namespace."""
    src = tmp_path / "src"
    write_imagenet_tree(src, splits=("val",), classes=2, per_class=6, size=(160, 120))
    out, copy = tmp_path / "out", tmp_path / "copy"
    out.mkdir()
    opts = "ro,size=1m" if case == "read-only" else "size=96k"
    script = (
        f'mount -t tmpfs -o {opts} tmpfs "$OUT" || exit 99\n'
        f'"$PY" -m instafilters.cli build --src "$SRC" --out "$OUT" --recipes "$REC" '
        f'--recipes-only --jobs 2 --batch-size 1\n'
        'rc=$?\ncp -a "$OUT" "$COPY"\nexit $rc\n')
    env = dict(_env(), OUT=str(out), SRC=str(src), REC=str(recipes), COPY=str(copy),
               PY=sys.executable)
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=120)
    if proc.returncode == 99:
        pytest.skip("cannot mount tmpfs here")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    errors = [x for x in proc.stderr.splitlines() if x.startswith("Error:")]
    reason = "Read-only file system" if case == "read-only" else "No space left on device"
    assert len(errors) == 1 and reason in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
    outputs = list(copy.rglob("*.JPEG"))
    if case == "disk-full":
        assert outputs  # some finished before the disk filled up
    for p in outputs:  # and each of them is complete
        with Image.open(p) as im:
            im.load()
    assert not [p for p in copy.rglob("*") if p.name.startswith(TEMP_PREFIX)]


# ---------------------------------------------------------------- determinism and scale-out
def test_deterministic_across_runs_and_jobs(reference, tmp_path, recipes):
    src, rels, ref = reference
    run_build(src, tmp_path / "two", "--jobs", "2", "--batch-size", "1", recipes=recipes,
              check=0)
    assert tree_files(tmp_path / "two") == ref
    assert set(ref) == expected(rels)


def test_shards_partition_the_tree_exactly_once(reference, tmp_path, recipes):
    src, rels, ref = reference
    out = tmp_path / "out"
    seen = []
    for i in range(3):
        proc = run_build(src, out, "--shard", f"{i}/3", "--jobs", "1", recipes=recipes,
                         check=0)
        assert "failed 0" in proc.stdout
    lines = manifest_lines(out)
    seen = [x["src"] for x in lines]
    assert sorted(seen) == rels  # every source once, in exactly one shard
    assert len({x.name for x in (out / ".instafilters").glob("manifest-*-s?of3-*")}) == 3
    assert tree_files(out) == ref
    # the split itself, on many names: disjoint, complete, roughly even
    names = [f"train/n{c:08d}/n{c:08d}_{i}.JPEG" for c in range(50) for i in range(40)]
    for n in (1, 2, 3, 7):
        parts = [[x for x in names if x in Shard(i, n)] for i in range(n)]
        assert sorted(sum(parts, [])) == sorted(names)
        assert min(map(len, parts)) > 0.8 * len(names) / n


@pytest.mark.parametrize("rel,shards", [  # pinned: a changed hash would re-split every array
    ("val/n01440764/ILSVRC2012_val_00000293.JPEG", [1, 2, 6, 3, 595]),
    ("train/n01440764/n01440764_10026.JPEG", [0, 0, 1, 6, 374]),
    ("val/n15075141/ILSVRC2012_val_00049999.JPEG", [0, 0, 3, 8, 696]),
])
def test_shard_of_is_pinned(rel, shards):
    assert [shard_of(rel, n) for n in (2, 3, 7, 16, 1024)] == shards


def test_bad_shard_is_a_usage_error(reference, tmp_path, recipes):
    proc = run_build(reference[0], tmp_path / "o", "--shard", "3/3", recipes=recipes, check=1)
    assert "expected 0 <= I < N" in proc.stderr


def test_dask_cluster_equals_local_run(reference, tmp_path, recipes):
    distributed = pytest.importorskip("distributed")
    src, rels, ref = reference
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  protocol="tcp", host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        proc = run_build(src, tmp_path / "dask", "--backend", "dask", "--scheduler",
                         cluster.scheduler_address, "--batch-size", "2", recipes=recipes,
                         check=0)
    assert "dask tcp://127.0.0.1" in proc.stderr
    assert tree_files(tmp_path / "dask") == ref


def test_dask_missing_names_what_to_install(reference, tmp_path, recipes):
    code = ("import sys; sys.modules['distributed'] = sys.modules['dask'] = None\n"
            "from instafilters.cli import main\n"
            f"main(['build', '--src', {str(reference[0])!r}, '--out', {str(tmp_path / 'o')!r},"
            f" '--recipes', {str(recipes)!r}, '--recipes-only', '--backend', 'dask',"
            " '--scheduler', 'tcp://127.0.0.1:1'])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, env=_env(), timeout=60)
    assert proc.returncode == 1
    assert "pip install 'instafilters[dask]'" in proc.stderr
    assert not (tmp_path / "o").exists()  # refused before writing anything


# ---------------------------------------------------------------- options
def test_several_strengths_get_their_own_folders(reference, tmp_path, recipes):
    src, rels, ref = reference
    out = tmp_path / "out"
    run_build(src, out, "--strength", "0.5,1", "--filters", "warm", "--split", "val",
              "--jobs", "1", recipes=recipes, check=0)
    val = [r for r in rels if r.startswith("val/")]
    files = tree_files(out)
    assert set(files) == {f"warm/{s}/{r}" for s in ("0.5", "1") for r in val}
    assert all(files[f"warm/1/{r}"] == ref[f"warm/{r}"] for r in val)
    assert all(files[f"warm/0.5/{r}"] != ref[f"warm/{r}"] for r in val)


def test_resize_shorter_side(reference, tmp_path, recipes):
    src, rels, _ = reference
    run_build(src, tmp_path / "out", "--resize", "32", "--filters", "cold", "--jobs", "1",
              recipes=recipes, check=0)
    for rel in rels:
        with Image.open(tmp_path / "out" / "cold" / rel) as im, Image.open(src / rel) as orig:
            assert min(im.size) == 32
            assert abs(im.size[0] / im.size[1] - orig.size[0] / orig.size[1]) < 0.05


def test_split_and_limit_per_class(reference, tmp_path, recipes):
    src, rels, _ = reference
    proc = run_build(src, tmp_path / "out", "--split", "val", "--limit-per-class", "2",
                     "--filters", "cold", "--jobs", "1", "--batch-size", "1", recipes=recipes,
                     check=0, env={"INSTAFILTERS_LOG_INTERVAL": "0"})
    # not a terminal: plain progress lines (here after every batch) instead of a bar
    assert "4/4 sources (100.0%)" in proc.stderr and "ETA" in proc.stderr
    val = [r for r in rels if r.startswith("val/")]
    want = sorted(r for r in val if r not in {val[2], val[5]})  # first 2 of each class by name
    assert sorted(tree_files(tmp_path / "out")) == [f"cold/{r}" for r in want]
    assert "of 4 sources" in proc.stdout and "0 non-image" in proc.stdout
    assert [e.rel for e in walk(src, "val", 2) if e.is_image] == want


def test_dry_run_counts_and_writes_nothing(reference, tmp_path, recipes):
    src, rels, _ = reference
    out = tmp_path / "out"
    proc = run_build(src, out, "--dry-run", recipes=recipes, check=0)
    assert not out.exists()
    assert f"{len(rels)} source images" in proc.stdout and "2 non-image files" in proc.stdout
    assert f"already done: 0; to write: {2 * len(rels)}" in proc.stdout
    assert "estimated disk use" in proc.stdout
    run_build(src, out, "--split", "val", "--jobs", "1", recipes=recipes, check=0)
    before = sorted(p for p in out.rglob("*"))
    proc = run_build(src, out, "--dry-run", recipes=recipes, check=0)
    assert f"already done: {len(rels)}; to write: {len(rels)}" in proc.stdout
    proc = run_build(src, out, "--dry-run", "--overwrite", recipes=recipes, check=0)
    assert f"already done: 0; to write: {2 * len(rels)}" in proc.stdout  # all remade
    assert sorted(p for p in out.rglob("*")) == before


def test_out_inside_src_is_not_walked(tmp_path, recipes):
    src = tmp_path / "src"
    rels = write_imagenet_tree(src, splits=("val",), classes=1, per_class=2)
    run_build(src, src / "ig", "--jobs", "1", recipes=recipes, check=0)
    proc = run_build(src, src / "ig", "--jobs", "1", recipes=recipes, check=0)
    assert f"skipped {len(rels)}, failed 0 of {len(rels)} sources" in proc.stdout
    proc = run_build(src, src, recipes=recipes, check=1)
    assert "must not be --src" in proc.stderr


def _hold_marker(path: Path):
    """A live process holding a run marker's lock, as a running shard does."""
    code = ("import fcntl, os, sys, time\n"
            "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
            "fcntl.lockf(fd, fcntl.LOCK_EX, 1, 0)\n"
            "print('locked', flush=True)\n"
            "time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_shard_removes_only_temporaries_that_cannot_be_in_flight(reference, tmp_path, recipes):
    src, rels, _ = reference
    out = tmp_path / "out"
    run_build(src, out, "--shard", "1/3", "--jobs", "1", recipes=recipes, check=0)
    meta, folder = out / ".instafilters", out / "warm" / "val"
    assert not list(meta.glob("running-*"))  # a run that ended normally leaves no marker
    # as if shards 0 and 1 had been killed while shard 2 is still writing
    (meta / "running-s0of3").write_text("killed\n")
    (meta / "running-s1of3").write_text("killed\n")
    alive = _hold_marker(meta / "running-s2of3")
    try:
        mine = folder / f"{TEMP_PREFIX}a1.s1of3.tmp"
        live = folder / f"{TEMP_PREFIX}b2.s2of3.tmp"
        dead = folder / f"{TEMP_PREFIX}c3.s0of3.tmp"
        for p in (mine, live, dead):
            p.write_bytes(b"partial")
        os.utime(live, (time.time() - 3600, time.time() - 3600))  # old, but its run lives
        proc = run_build(src, out, "--shard", "1/3", "--jobs", "1", recipes=recipes, check=0)
        assert "removed 2 temporary file(s)" in proc.stderr
        assert live.exists() and not mine.exists() and not dead.exists()
        assert sorted(p.name for p in meta.glob("running-*")) == ["running-s2of3"]
        # the live shard is also why new settings are refused until it ends
        proc = run_build(src, out, "--shard", "0/3", "--quality", "80", "--overwrite",
                         recipes=recipes, check=1)
        assert "running-s2of3" in proc.stderr and "must wait" in proc.stderr
        # and a second run of the same shard is refused
        proc = run_build(src, out, "--shard", "2/3", recipes=recipes, check=1)
        assert "shard s2of3 is being built by another run" in proc.stderr
    finally:
        alive.kill()
        alive.wait()


def test_a_worker_checks_output_folders_again_in_the_next_run(tmp_path):
    """A Dask worker outlives a run: a folder it checked for one run may be a symlink into
    --src by the next, and must be refused then, not written through over the sources."""
    import dataclasses
    from instafilters.dataset.worker import DONE, Job, Target, process_source
    from instafilters.errors import OutputError
    src, out = tmp_path / "src", tmp_path / "o"
    rel = write_imagenet_tree(src, splits=("val",), classes=1, per_class=1, extras=False)[0]
    filters = {"x": lambda rgb, strength, out=None: rgb}
    job = Job(str(src), str(out), (), (Target("x", "x", 1.0),), 90, None, True, "t", run="1")
    assert process_source(job, filters, rel)[1] == DONE
    shutil.rmtree(out / "x")
    (out / "x").symlink_to(src)
    before = (src / rel).read_bytes()
    with pytest.raises(OutputError, match="leads into --src"):
        process_source(dataclasses.replace(job, run="2"), filters, rel)
    assert (src / rel).read_bytes() == before


def test_a_failure_reason_does_not_repeat_an_odd_source_name(tmp_path, recipes):
    """The manifest and failures file name the source; the reason must not name it again
    (for a name with a newline, io.decode quotes and escapes it: strip that form too)."""
    src, out = tmp_path / "src", tmp_path / "o"
    folder = src / "val" / "n01440764"
    folder.mkdir(parents=True)
    (folder / "bad\nname.JPEG").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    run_build(src, out, "--jobs", "1", recipes=recipes, check=1)  # 1: a source failed
    [line] = [x for x in manifest_lines(out) if x.get("status") == "failed"]
    assert line["src"] == "val/n01440764/bad\nname.JPEG"
    assert line["reason"].startswith("cannot decode image ("), line["reason"]
    [failures] = (out / ".instafilters").glob("failures-*.tsv")
    assert str(src) not in failures.read_text()
