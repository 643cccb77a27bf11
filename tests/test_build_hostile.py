"""`instafilters build` against a hostile user (issue 7): nothing outside --out, nothing lost,
never a traceback, never a hang. Real JPEGs, real CLI subprocesses, bounded by timeouts."""
from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from conftest import ASCII_ORIENTATION, cli, snapshot, write_imagenet_tree
from test_build import _env, manifest_lines, run_build, tree_files
from test_build import recipes  # noqa: F401,F811 (the fixture: test_build's recipe file)


@pytest.fixture
def tree(tmp_path):
    src = tmp_path / "proj" / "src"
    rels = write_imagenet_tree(src, splits=("val",), classes=2, per_class=2, extras=False)
    return src, rels


def usage_error(proc, fragment):
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert fragment in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


# ---------------------------------------------------------------- paths stay inside their roots
@pytest.mark.parametrize("split", ["../../proj/src", "../..", "/etc", "val/../../x", "val,.."])
def test_split_cannot_leave_src_or_out(tree, tmp_path, recipes, split):
    src, rels = tree
    before = snapshot(tmp_path)
    proc = run_build(src, tmp_path / "o", "--split", split, "--filters", "warm",
                     "--overwrite", "-j1", recipes=recipes, timeout=60)
    usage_error(proc, "--split")
    assert "without '..'" in proc.stderr
    assert snapshot(tmp_path) == before  # no source replaced, nothing written anywhere


def test_split_dot_and_redundant_parts_mean_the_same_folders(tree, tmp_path, recipes):
    src, rels = tree
    run_build(src, tmp_path / "a", "--split", "./val/", "--filters", "cold", "-j1",
              recipes=recipes, check=0, timeout=60)
    run_build(src, tmp_path / "b", "--split", ".", "--filters", "cold", "-j1",
              recipes=recipes, check=0, timeout=60)
    want = {f"cold/{r}" for r in rels}
    assert set(tree_files(tmp_path / "a")) == set(tree_files(tmp_path / "b")) == want


# ---------------------------------------------------------------- option values, as a whole
@pytest.mark.parametrize("args,fragment", [
    (["--strength", "0.1234561,0.1234562"], "would both be written to the folder '0.123456'"),
    (["--strength", ","], "at least one number"),
    (["--strength", "nan"], "got 'nan'"),
    (["--strength", "0.5,inf"], "got 'inf'"),
    (["--strength", "-0.1"], "got '-0.1'"),
    (["--resize", "100000"], "--resize"),
    (["--quality", "0"], "--quality"),
    (["--limit-per-class", "0"], "--limit-per-class"),
])
def test_bad_option_values_are_usage_errors_before_any_work(tree, tmp_path, recipes, args,
                                                            fragment):
    src, _ = tree
    proc = run_build(src, tmp_path / "o", *args, recipes=recipes, timeout=60)
    usage_error(proc, fragment)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("command", ["apply", "preview"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1.5"])
def test_single_strength_refuses_non_finite(tmp_path, sample_photo, command, value):
    out = tmp_path / "o.jpg"
    args = (["apply", "-f", "toaster", sample_photo, out] if command == "apply"
            else ["preview", sample_photo, "-o", out])
    proc = cli(*args, "--strength", value)
    usage_error(proc, "expected a number in [0, 1]")
    assert not (tmp_path / "o.jpg").exists()


def test_same_strength_twice_is_one_folder_and_jobs_are_capped(tree, tmp_path, recipes):
    src, rels = tree
    proc = run_build(src, tmp_path / "o", "--strength", "0.5,0.50,1", "--filters", "warm",
                     "--jobs", "100000", recipes=recipes, check=0, timeout=120)
    from joblib import cpu_count
    assert f"with {cpu_count()} job(s)" in proc.stderr
    assert set(tree_files(tmp_path / "o")) == {f"warm/{s}/{r}" for s in ("0.5", "1")
                                               for r in rels}


# ---------------------------------------------------------------- one source never ends a run
def test_bad_exif_does_not_stop_the_build(tree, tmp_path, recipes):
    src, rels = tree
    bad = src / "val" / "n01440764" / "bad_exif.JPEG"
    Image.open(src / rels[0]).save(bad, quality=90, exif=ASCII_ORIENTATION)
    statuses = []
    for attempt in range(2):  # and not on a resume either
        proc = run_build(src, tmp_path / "o", "--filters", "warm", "-j1", recipes=recipes,
                         timeout=120)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
        assert "Warning" not in proc.stderr, proc.stderr
        lines = {x["src"]: x for x in manifest_lines(tmp_path / "o")}
        statuses.append(lines["val/n01440764/bad_exif.JPEG"]["status"])
    assert statuses == ["done", "skipped"]  # the bad tag is dropped: built once, then kept
    assert (tmp_path / "o" / "warm" / "val" / "n01440764" / "bad_exif.JPEG").is_file()
    assert all((tmp_path / "o" / "warm" / r).exists() for r in rels)


def test_an_unexpected_exception_is_that_sources_failure(tmp_path):
    from instafilters.dataset.worker import FAILED, Job, Target, process_source
    src = tmp_path / "src"
    rels = write_imagenet_tree(src, splits=("val",), classes=1, per_class=1, extras=False)

    def broken(rgb, strength, out=None):
        raise struct.error("required argument is not an integer")

    job = Job(str(src), str(tmp_path / "o"), (), (Target("x", "x", 1.0),), 90, None, False, "t")
    assert process_source(job, {"x": broken}, rels[0]) == (
        rels[0], FAILED, 0, "unexpected error: error: required argument is not an integer")


# ---------------------------------------------------------------- names of any bytes
@pytest.mark.skipif(sys.platform == "darwin", reason="macOS file systems refuse non-UTF-8 names")
def test_odd_file_names_are_recorded_faithfully(tmp_path, recipes):
    src = tmp_path / "src"
    d = src / "val" / "n01440764"
    d.mkdir(parents=True)
    names = [b"bad\xff\xfe.JPEG", b"evil\nval\tforged.JPEG", b"back\\slash.JPEG"]
    for name in names:
        with open(os.path.join(os.fsencode(d), name), "wb") as f:
            f.write(b"not a jpeg")
    proc = run_build(src, tmp_path / "o", "--filters", "warm", "-j1", recipes=recipes,
                     timeout=60)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    meta = tmp_path / "o" / ".instafilters"
    rows = next(meta.glob("failures-*.tsv")).read_bytes().decode("utf-8").split("\n")
    assert rows[0] == "source\treason" and rows[-1] == ""
    got = sorted(r.split("\t")[0] for r in rows[1:-1])
    assert all(len(r.split("\t")) == 2 for r in rows[1:-1])  # no forged rows or columns
    assert got == sorted(["val/n01440764/bad\\xff\\xfe.JPEG",
                          "val/n01440764/evil\\x0aval\\x09forged.JPEG",
                          "val/n01440764/back\\\\slash.JPEG"])
    srcs = sorted(os.fsencode(x["src"]) for x in manifest_lines(tmp_path / "o"))
    assert srcs == sorted(b"val/n01440764/" + n for n in names)  # JSON round-trips the bytes
    log = next(meta.glob("build-*.log")).read_bytes().decode("utf-8")
    assert "forged" in log and not any(line.startswith("val\t") for line in log.split("\n"))


# ---------------------------------------------------------------- output trees
def test_never_build_out_of_or_into_an_output_tree(tree, tmp_path, recipes):
    src, rels = tree
    out = tmp_path / "o"
    run_build(src, out, "--filters", "warm", "-j1", recipes=recipes, check=0, timeout=60)
    before = snapshot(tmp_path)
    for args, fragment in [((out / "warm", tmp_path / "o2"), "is inside the build output"),
                           ((out, tmp_path / "o3"), "is inside the build output"),
                           ((src, out / "warm" / "again"), "--out"),
                           ((src, out / "sub"), "is inside the build output")]:
        proc = run_build(*args, "--filters", "warm", "-j1", recipes=recipes, timeout=60)
        assert proc.returncode == 1 and fragment in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    assert snapshot(tmp_path) == before


# ---------------------------------------------------------------- concurrent runs on one --out
def _start(src, out, recipes, *args):
    cmd = [sys.executable, "-m", "instafilters.cli", "build", "--src", str(src), "--out",
           str(out), "--recipes", str(recipes), "--recipes-only", *map(str, args)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env())


def test_concurrent_shards_with_other_settings_cannot_mix(tmp_path, recipes):
    src = tmp_path / "src"
    write_imagenet_tree(src, splits=("val",), classes=2, per_class=4, extras=False)
    out = tmp_path / "o"
    runs = [_start(src, out, recipes, "--shard", "0/2", "--quality", "90", "-j1"),
            _start(src, out, recipes, "--shard", "1/2", "--quality", "95", "-j1")]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in runs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 1], results
    refused = next(err for code, err in results if code == 1)
    assert "built with other settings" in refused and "Traceback" not in refused
    record = json.loads((out / ".instafilters" / "run.json").read_text())
    winner = 90 if results[0][0] == 0 else 95
    assert record["options"]["quality"] == winner


def test_concurrent_same_settings_runs_coordinate(tmp_path, recipes):
    src = tmp_path / "src"
    rels = write_imagenet_tree(src, splits=("val",), classes=2, per_class=6, extras=False)
    ref = tmp_path / "ref"
    run_build(src, ref, "-j1", recipes=recipes, check=0, timeout=120)
    out = tmp_path / "o"
    runs = [_start(src, out, recipes, "--shard", "0/2", "-j1"),
            _start(src, out, recipes, "--shard", "1/2", "-j1"),
            _start(src, out, recipes, "--shard", "1/2", "-j1")]  # the same shard twice
    results = [(p.wait(timeout=120), p.stderr.read()) for p in runs]
    assert results[0][0] == 0, results[0][1]
    # of the two runs of shard 1/2, one builds; the other is refused or finds it done
    assert 0 in (results[1][0], results[2][0]), results
    for code, err in results:
        assert code == 0 or "is being built by another run" in err, err
        assert "No such file" not in err and "Traceback" not in err, err
    assert tree_files(out) == tree_files(ref)
    assert not [p for p in out.rglob("*") if p.name.startswith(".instafilters-tmp-")]
    assert not list((out / ".instafilters").glob("running-*"))


# ---------------------------------------------------------------- kill -9 and what is left
def test_manifest_keeps_every_finished_source_after_kill_9(tree, tmp_path, recipes):
    src, rels = tree
    out = tmp_path / "o"
    proc = run_build(src, out, "-j1", "--batch-size", "1", recipes=recipes, timeout=60,
                     env={"INSTAFILTERS_TEST_CRASH_AFTER": "5"})  # dies writing output 6
    assert proc.returncode == -signal.SIGKILL
    lines = manifest_lines(out)
    assert [x["status"] for x in lines] == ["done", "done"]  # sources 1 and 2 (2 outputs each)
    assert [x["src"] for x in lines] == rels[:2]


def test_stale_shared_memory_is_removed_by_the_next_run(tree, tmp_path, recipes):
    if not os.path.isdir("/dev/shm"):
        pytest.skip("no /dev/shm")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = [Path(f"/dev/shm/sem.loky-{dead.pid}-testonly"),
             Path(f"/dev/shm/joblib_memmapping_folder_{dead.pid}_testonly")]
    alive = Path(f"/dev/shm/sem.loky-{os.getpid()}-testonly")
    stale[0].write_bytes(b"")
    stale[1].mkdir()
    alive.write_bytes(b"")
    try:
        src, _ = tree
        proc = run_build(src, tmp_path / "o", "-j2", recipes=recipes, check=0, timeout=120)
        assert "shared-memory" in proc.stderr
        assert not stale[0].exists() and not stale[1].exists() and alive.exists()
    finally:
        for p in stale + [alive]:
            if p.is_dir():
                p.rmdir()
            elif p.exists():
                p.unlink()


@pytest.mark.parametrize("content", [b"[1, 2]", b'{"filters": {"warm": 3}}',
                                     b'{"filters": {"warm": {"recipe": "x", "valid_since": NaN}}}',
                                     b"\xff\xfe not utf-8", b'{"options": 1, "filters": {}}'])
def test_a_wrong_run_json_is_one_line_naming_it(tree, tmp_path, recipes, content):
    src, _ = tree
    meta = tmp_path / "o" / ".instafilters"
    meta.mkdir(parents=True)
    (meta / "run.json").write_bytes(content)
    proc = run_build(src, tmp_path / "o", "-j1", recipes=recipes, timeout=60)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("Error: ") and "run.json: unreadable build record" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("rel", ["..", "../x", "a/../../b", "/abs", "a\\..\\b", "a\0b"])
def test_no_derived_path_leaves_its_root(rel):
    from instafilters.dataset.build import targets_for
    from instafilters.paths import PathEscapeError, clean_rel, inside
    with pytest.raises(PathEscapeError):
        clean_rel(rel)
    with pytest.raises(PathEscapeError):
        inside("/out", rel)
    with pytest.raises(PathEscapeError):
        targets_for([rel], (1.0,))  # a filter name is a folder name too
    assert inside("/out", "./a//b/") == "/out/a/b" and clean_rel(".") == ""


def test_escaped_names_are_one_line_and_reversible():
    import codecs
    from instafilters.paths import escape_name
    for raw in [b"plain.JPEG", b"a\tb\nc\rd", b"\xff\xfe", b"back\\x41slash", "é".encode()]:
        text = escape_name(os.fsdecode(raw))
        assert text.isprintable()
        back = codecs.escape_decode(text.encode("utf-8"))[0]
        assert back == raw, (raw, text)
