"""A second sweep of hostile inputs (issue 7's "new cases of the same classes"): each case
through the real CLI in a subprocess or on real files, bounded by a timeout."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import cli, one_line_error, snapshot, write_imagenet_tree
from test_build import tree_files
from test_hostile_inputs import ok


# ---------------------------------------------------------------- recipe files
@pytest.mark.parametrize("ops", ["{op: saturation, amount: 1.1, amount: 1.2}",
                                 "{op: curves, r: [[0, 0], [255, 255]], r: [[0, 9], [255, 9]]}"])
def test_a_key_given_twice_is_refused_not_silently_the_last(tmp_path, ops):
    path = tmp_path / "dup.yaml"
    path.write_text(f"filters:\n- name: x\n  description: d\n  ops:\n  - {ops}\n")
    one_line_error(cli("list", "--recipes", path, "--recipes-only", timeout=20), path,
                   "line 5: duplicate key")


def test_a_recipe_file_with_a_bom_reads(tmp_path):
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbffilters:\n- {name: bom, description: d, ops: "
                     b"[{op: saturation, amount: 1}]}\n")
    assert "bom" in ok(cli("list", "--recipes", path, "--recipes-only", "--filters", "all",
                        timeout=20))


# ---------------------------------------------------------------- paths
def test_out_on_a_source_folder_is_refused_not_silently_skipped(tmp_path):
    """--out src/val (or a link to it) used to build 0 sources, exit 0, and leave a
    .instafilters folder that hid val from every later build."""
    src = tmp_path / "src"
    write_imagenet_tree(src, splits=("val",), classes=1, per_class=1, extras=False)
    (tmp_path / "link").symlink_to(src / "val")
    before = snapshot(tmp_path)
    for out in (src / "val", tmp_path / "link"):
        one_line_error(cli("build", "--src", src, "--out", out, "--filters", "toaster", "-j1"),
                       out, "already holds files")
    assert snapshot(tmp_path) == before and not list(src.rglob(".instafilters"))


# ---------------------------------------------------------------- output files of eval
def test_results_file_in_a_bad_place_fails_before_inference(tmp_path, sample_dir):
    (tmp_path / "afile").write_text("")
    bad = tmp_path / "afile" / "r.csv"
    err = one_line_error(cli("eval", "efficientnet_lite0", "--clean", sample_dir, "--filters",
                             "toaster", "--limit-per-class", "1", "--no-progress",
                             "--results-file", bad, timeout=120),
                         f"--results-file {bad}: cannot write here")  # not after the run
    assert "is not a folder" in err


# ---------------------------------------------------------------- option values
def test_minus_zero_is_zero(tmp_path):
    src, out = tmp_path / "src", tmp_path / "o"
    rels = write_imagenet_tree(src, splits=("val",), classes=1, per_class=1, extras=False)
    ok(cli("build", "--src", src, "--out", out, "--filters", "toaster", "-j1",
           "--strength", "-0,0,1e-400,0.5"))
    assert sorted(p.name for p in (out / "toaster").iterdir()) == ["0", "0.5"]
    assert {str(p.relative_to(out)) for p in out.rglob("*.JPEG")} == {
        f"toaster/{s}/{rels[0]}" for s in ("0", "0.5")}


# ---------------------------------------------------------------- signals
def _build_args(src, out):
    return [sys.executable, "-m", "instafilters.cli", "build", "--src", str(src), "--out",
            str(out), "--filters", "all", "-j2", "--batch-size", "1"]


@pytest.fixture(scope="module")
def signal_tree(tmp_path_factory):
    """(src, ref): a tree whose build with every filter takes a second or two, and that
    build, made once for the tests that interrupt it."""
    root = tmp_path_factory.mktemp("signals")
    src, ref = root / "src", root / "ref"
    write_imagenet_tree(src, splits=("val",), classes=2, per_class=7, size=(300, 225),
                        extras=False)
    subprocess.run(_build_args(src, ref), check=True, capture_output=True, timeout=120)
    return src, ref


def _start_build_and_wait_for_outputs(src, out):
    """A real build in its own session, returned once its first outputs exist (mid-run)."""
    import time
    proc = subprocess.Popen(_build_args(src, out), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 60
    while not list(out.glob("*/val/*/*.JPEG")) and time.monotonic() < deadline:
        time.sleep(0.02)
    return proc


def test_sigterm_mid_build_stops_cleanly_and_resumes_byte_identical(tmp_path, signal_tree):
    """Slurm preempts with SIGTERM: one line, exit 143, no loky warnings, no orphans."""
    import signal
    import time
    (src, ref), out = signal_tree, tmp_path / "o"
    proc = _start_build_and_wait_for_outputs(src, out)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    err = err.decode(errors="replace")
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert err.strip().splitlines()[-1] == "Terminated." and "Warning" not in err, err
    assert "Traceback" not in err
    time.sleep(0.5)
    alive = subprocess.run(["ps", "-o", "stat=", "-g", str(proc.pid)], capture_output=True,
                           text=True).stdout.split()
    assert all(s.startswith("Z") for s in alive), alive  # no worker still running
    written = len(list(out.rglob("*.JPEG")))
    assert 0 < written < 14 * 41  # stopped mid-build
    subprocess.run(_build_args(src, out), check=True, capture_output=True, timeout=120)
    assert not list(out.rglob(".instafilters-tmp-*"))
    assert tree_files(out) == tree_files(ref)


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="finds workers in /proc")
def test_a_killed_worker_is_one_line_and_the_rerun_resumes(tmp_path, signal_tree):
    """kill -9 of one worker (what the out-of-memory killer does) ended in loky's
    TerminatedWorkerError traceback."""
    import time
    (src, ref), out = signal_tree, tmp_path / "o"
    proc = _start_build_and_wait_for_outputs(src, out)
    kids = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                          text=True).stdout.split()
    workers = [k for k in kids if b"popen_loky" in open(f"/proc/{k}/cmdline", "rb").read()]
    os.kill(int(workers[0]), 9)
    _, err = proc.communicate(timeout=60)
    err = err.decode(errors="replace")
    assert proc.returncode == 1 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1].startswith("Error: a worker process died"), err
    subprocess.run(_build_args(src, out), check=True, capture_output=True, timeout=120)
    assert not list(out.rglob(".instafilters-tmp-*"))
    assert tree_files(out) == tree_files(ref)


# ---------------------------------------------------------------- images
def test_every_image_extension_the_build_takes_can_be_written(tmp_path):
    """.pgm was read as an image but had no output format: failed on every run."""
    import numpy as np
    from PIL import Image
    from instafilters import io
    assert all(io.format_for(f"x{ext}") for ext in io.IMAGE_EXTENSIONS)
    src, out = tmp_path / "src", tmp_path / "o"
    (src / "val" / "c").mkdir(parents=True)
    grey = np.random.default_rng(0).integers(0, 256, (20, 30), dtype=np.uint8)
    Image.fromarray(grey).save(src / "val" / "c" / "g.pgm")
    ok(cli("build", "--src", src, "--out", out, "--filters", "toaster", "-j1"))
    with Image.open(out / "toaster" / "val" / "c" / "g.pgm") as im:
        assert (im.format, im.mode, im.size) == ("PPM", "RGB", (30, 20))


# ---------------------------------------------------------------- transforms
@pytest.mark.parametrize("kwargs", [
    {"strength": "0.5"}, {"strength": True}, {"strength": (0.2, 0.5)}, {"jpeg_quality": True},
])
def test_insta_filter_refuses_odd_arguments_by_name(kwargs):
    from instafilters.errors import InstafiltersError
    from instafilters.transforms import InstaFilterCallable
    with pytest.raises(InstafiltersError, match=next(iter(kwargs))):
        InstaFilterCallable("toaster", **kwargs)


@pytest.mark.parametrize("kwargs", [
    {"p": "0.5"}, {"strength": (0.1, 0.5, 0.9)}, {"strength": ()}, {"strength": (0.9, 0.5)},
    {"strength": (0.1, float("nan"))},
])
def test_random_insta_filter_refuses_odd_arguments_by_name(kwargs):
    from instafilters.errors import InstafiltersError
    from instafilters.transforms import RandomInstaFilterCallable
    with pytest.raises(InstafiltersError, match=next(iter(kwargs))):
        RandomInstaFilterCallable("toaster,lofi", **kwargs)


def test_image_like_inputs_are_filtered_or_refused_never_passed_through():
    """The v2 class passed a float HxWx3 array through unfiltered; an empty image raised
    from OpenCV; a 0-d tensor strength raised 'iteration over a 0-d tensor'."""
    import numpy as np
    torch = pytest.importorskip("torch")
    from instafilters.transforms import InstaFilter, RandomInstaFilter
    rgb = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    f = InstaFilter("toaster", strength=torch.tensor(0.5))
    assert f.strength == 0.5 and RandomInstaFilter(strength=torch.tensor([0.1, 0.5])).strength \
        == (pytest.approx(0.1), 0.5)
    with pytest.raises(ValueError, match="uint8"):
        f(rgb.astype(np.float32) / 255)
    assert f(np.zeros((0, 0, 3), np.uint8)).shape == (0, 0, 3)
    labels = np.array([1.0, 2.0])
    assert f((rgb, labels))[1] is labels  # not an image: passes through


# ---------------------------------------------------------------- datasets
def test_dataset_split_and_root_stay_clean(tmp_path):
    """InstagramImageNet(split='..' or '/etc') read outside its root; a build output given as
    the clean root was filtered a second time, silently."""
    from instafilters.datasets import InstagramImageNet
    from instafilters.errors import InstafiltersError
    src, out = tmp_path / "src", tmp_path / "o"
    write_imagenet_tree(src, splits=("val",), classes=1, per_class=1, extras=False)
    for split in ("..", "/etc", "val/../.."):
        with pytest.raises(InstafiltersError, match="without '..'"):
            InstagramImageNet(src, "toaster", split=split)
    assert len(InstagramImageNet(src, "toaster", split="./val/")) == 1
    ok(cli("build", "--src", src, "--out", out, "--filters", "toaster", "-j1"))
    for root in (out, out / "toaster"):
        with pytest.raises(InstafiltersError, match="inside the build output"):
            InstagramImageNet(root, "toaster", split=None)
    one_line_error(cli("eval", "efficientnet_lite0", "--clean", out / "toaster", "--filters",
                       "toaster", "--no-progress"), "inside the build output")


@pytest.mark.skipif(sys.platform == "darwin", reason="macOS file systems refuse non-UTF-8 names")
def test_paths_with_any_bytes_never_split_an_error_or_log_line(tmp_path):
    src, out = tmp_path / "src", tmp_path / "o"
    write_imagenet_tree(src, splits=("val",), classes=1, per_class=1, extras=False)
    ok(cli("build", "--src", src, "--out", out, "--filters", "toaster", "-j1"))
    for name, shown in [(b"bad\nname", "bad\\x0aname"), (b"x\xff\t", "x\\xff\\x09")]:
        inner = out / os.fsdecode(name)  # --out inside an output tree: refused
        err = one_line_error(cli("build", "--src", src, "--out", inner, "--filters", "toaster"),
                             "is inside the build output")
        assert shown in err
    fresh = tmp_path / "new\nout"
    proc = cli("build", "--src", src, "--out", fresh, "--filters", "toaster", "-j1")
    assert proc.returncode == 0 and f"into '{tmp_path}/new\\x0aout'" in proc.stderr, proc.stderr


@pytest.mark.parametrize("value,fragment", [("1e-1", None), ("2E0", None),
                                            ("1e400", "got inf"), ("'1e-1'", "got '1e-1'")])
def test_exponent_numbers_read_as_numbers_quoted_ones_stay_strings(tmp_path, value, fragment):
    path = tmp_path / "e.yaml"
    path.write_text(f"filters:\n- {{name: x, description: d, ops: [{{op: saturation, "
                    f"amount: {value}}}]}}\n")
    result = cli("list", "--recipes", path, "--recipes-only", "--filters", "all", timeout=20)
    if fragment is None:
        assert "x " in ok(result)
    else:
        one_line_error(result, "field 'amount'", fragment)


@pytest.mark.parametrize("jobs", ["1"])  # -j2 runs the same worker code, just slower
def test_a_link_in_out_into_src_never_overwrites_a_source(tmp_path, jobs):
    """<out>/toaster -> the source tree: every 'output' was a source, replaced, exit 0."""
    src, out = tmp_path / "src", tmp_path / "o"
    write_imagenet_tree(src, splits=("val",), classes=1, per_class=2, extras=False)
    out.mkdir()
    (out / "toaster").symlink_to(src, target_is_directory=True)
    before = snapshot(src)
    for extra in ([], ["--overwrite"]):
        result = cli("build", "--src", src, "--out", out, "--filters", "toaster", "-j", jobs,
                     *extra)
        err = result.stderr
        assert result.returncode == 1 and "Traceback" not in err, err
        assert err.strip().splitlines()[-1].endswith("refusing to write over the sources"), err
    assert snapshot(src) == before
    # --out inside --src stays fine: its folders resolve into --out
    ok(cli("build", "--src", src, "--out", src / "built", "--filters", "toaster", "-j", jobs))


# ---------------------------------------------------------------- labels CSV
@pytest.mark.parametrize("content,fragment", [
    (b"path,accepted_classes\nval/a.JPEG\n", "line 2: accepted_classes"),  # short row
    (b"path,accepted_classes\n\xff\xfe,1\n", "not UTF-8"),
    (b"path,accepted_classes\nval/a.JPEG,1\nval/a.JPEG,2\n", "line 3: 'val/a.JPEG' is listed"),
    (None, "a FIFO, not a regular file"),  # hung forever
])
def test_labels_csv_problems_are_one_line(tmp_path, content, fragment):
    from instafilters.errors import InstafiltersError
    from instafilters.evaluate.labels import read_accepted_labels
    path = tmp_path / "labels.csv"
    if content is None:
        os.mkfifo(path)
    else:
        path.write_bytes(content)
    with pytest.raises(InstafiltersError, match=fragment) as info:
        read_accepted_labels(path)
    assert str(path) in str(info.value)


def test_labels_csv_with_a_bom_reads(tmp_path):
    from instafilters.evaluate.labels import read_accepted_labels
    path = tmp_path / "labels.csv"
    path.write_bytes(b"\xef\xbb\xbfpath,accepted_classes\nval/n1/a.JPEG,1 2\n")
    assert read_accepted_labels(path) == {"val/n1/a": [1, 2]}


def test_preview_of_a_one_pixel_wide_image_is_small_and_quick(tmp_path):
    """A 1x20000 image made 240x4,800,000 tiles: gigabytes, then MemoryError."""
    from PIL import Image
    src, out = tmp_path / "tall.png", tmp_path / "sheet.jpg"
    Image.new("RGB", (1, 20000), (90, 120, 150)).save(src)
    ok(cli("preview", src, "-o", out, "--filters", "toaster,lofi", timeout=30))
    with Image.open(out) as im:
        assert im.height < 2000 and im.width < 1000, im.size


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_stdout_on_a_full_disk_is_one_line(tmp_path):
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "instafilters.cli", "list"], stdout=full,
                              stderr=subprocess.PIPE, timeout=20)
    assert proc.returncode == 1
    assert proc.stderr.decode() == "Error: cannot write the output: No space left on device\n"


def test_a_filter_with_thousands_of_ops_is_refused_quickly(tmp_path):
    """30,000 ops (a 1 MB file, under the size limit) took 93 s and 15 GB to apply."""
    path = tmp_path / "many.yaml"
    ops = "".join("  - {op: contrast, amount: 1.01}\n" for _ in range(5000))
    path.write_text(f"filters:\n- name: x\n  description: d\n  ops:\n{ops}")
    one_line_error(cli("list", "--recipes", path, "--recipes-only", "--filters", "all",
                       timeout=20), path, "field 'ops': 5000 ops, over the limit of 32")


def test_eval_preprocessing_of_a_one_pixel_high_image_is_bounded():
    """Resize(256) of a 20000x1 image made 5,120,000x256 pixels in a loader worker."""
    pytest.importorskip("torchvision")
    import numpy as np
    from PIL import Image
    from torchvision import transforms as T
    from instafilters.evaluate.preprocessing import PilPart
    part = PilPart([T.Resize(256), T.CenterCrop(224)])
    wide = Image.new("RGB", (20000, 1), (90, 120, 150))
    assert tuple(part(wide).shape) == (3, 224, 224)
    rgb = np.random.default_rng(0).integers(0, 256, (200, 300, 3), dtype=np.uint8)
    normal = Image.fromarray(rgb)  # an ordinary image: torchvision's pixels exactly
    assert part(normal).equal(T.PILToTensor()(T.CenterCrop(224)(T.Resize(256)(normal))))


def test_walk_of_a_tree_deeper_than_the_recursion_limit(tmp_path):
    """The recursive walk ended every build of such a tree in a RecursionError traceback."""
    from instafilters.tree import walk
    deep = tmp_path / "src"
    deep.mkdir()
    for _ in range(400):
        deep = deep / "a"
        deep.mkdir()
    (deep / "x.png").write_bytes(b"")
    (tmp_path / "src" / "b").mkdir()
    (tmp_path / "src" / "b" / "y.png").write_bytes(b"")
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(300)  # a smaller tree, as deep as the limit allows, runs quickly
    try:
        rels = [e.rel for e in walk(tmp_path / "src")]
    finally:
        sys.setrecursionlimit(limit)
    assert rels == [str((deep / "x.png").relative_to(tmp_path / "src")), "b/y.png"]
