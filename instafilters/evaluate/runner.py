"""Batched inference over the clean tree and every filtered copy: one DataLoader for all sets
(workers start once), inference_mode, channels-last, AMP on CUDA, a progress bar in images/s.

torch is imported inside functions only.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from ..errors import ImageError, InstafiltersError
from .loader import ImageDataset, default_workers, make_loader
from .metrics import Moments
from .models import LoadedModel
from .pairing import CLEAN, EvalPlan

log = logging.getLogger(__name__)

TOPK = 5


@dataclass
class EvalResult:
    """Raw outcome: top-5 predictions per set (each (N, 5), rows in plan.keys order) and, for
    --divergence, the per-channel moments of each layer's spatially averaged activations."""
    plan: EvalPlan
    model: LoadedModel
    predictions: dict[str, np.ndarray]
    moments: dict[str, dict[str, Moments]] = field(default_factory=dict)  # set -> layer -> .
    device: str = "cpu"
    settings: dict = field(default_factory=dict)


def resolve_device(device: str) -> str:
    import torch
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise InstafiltersError("--device cuda: no CUDA device is available "
                                f"(torch {torch.__version__}); use --device cpu")
    return device


def pool_features(output):
    """A layer's output -> (B, C) float32: mean over space (NCHW) or tokens (B, T, C)."""
    import torch
    if isinstance(output, (tuple, list)):
        output = output[0]
    if not isinstance(output, torch.Tensor):
        raise InstafiltersError(f"--divergence: the layer returns {type(output).__name__}, "
                                f"not a tensor")
    x = output.float()
    if x.ndim == 4:
        return x.mean(dim=(2, 3))
    if x.ndim == 3:
        return x.mean(dim=1)
    if x.ndim == 2:
        return x
    raise InstafiltersError(f"--divergence: cannot pool a layer output of shape "
                            f"{tuple(x.shape)}")


def _hook_layers(module, layers):
    """Forward hooks that keep each named layer's pooled output of the last batch."""
    names = dict(module.named_modules())
    captured, handles = {}, []
    for layer in layers:
        if layer not in names or not layer:
            top = [n for n, _ in module.named_children()]
            close = [n for n in names if n.startswith(layer.split(".")[0])][:5] if layer else []
            raise InstafiltersError(
                f"--divergence {layer!r}: no such layer in {type(module).__name__}; its top-level "
                f"layers are {', '.join(top)}" + (f" (near: {', '.join(close)})" if close else ""))

        def hook(_mod, _inp, out, layer=layer):
            captured[layer] = pool_features(out)
        handles.append(names[layer].register_forward_hook(hook))
    return captured, handles


def run(plan: EvalPlan, model: LoadedModel, device: str = "auto", batch_size: int = 64,
        workers: int | None = None, amp: bool = True, divergence_layers=(),
        progress: bool = True) -> EvalResult:
    """Run `model` on every image of every set of `plan`; returns the raw predictions."""
    import torch
    from tqdm import tqdm

    device = resolve_device(device)
    use_amp = amp and device == "cuda"
    workers = default_workers(device) if workers is None else workers
    if device == "cuda":  # the same algorithms every run, so two runs give the same numbers
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True

    module = model.module.to(device).to(memory_format=torch.channels_last).eval()
    items = plan.items()
    set_names = list(plan.sets)
    set_of_item = np.array([s for s, _ in items], dtype=np.int64)
    loader = make_loader(ImageDataset(items, model.split.cpu), batch_size, workers,
                         pin_memory=device == "cuda")
    captured, handles = _hook_layers(module, divergence_layers)
    moments: dict[str, dict[str, Moments]] = {s: {} for s in set_names}
    topk = np.full((len(items), TOPK), -1, dtype=np.int64)
    bar = tqdm(total=len(items), unit="img", desc=f"eval {model.name}", dynamic_ncols=True,
               disable=None if progress else True, smoothing=0.1)
    try:
        with torch.inference_mode():
            for images, index, errors in loader:
                if errors:
                    more = f" (and {len(errors) - 1} more in this batch)" if len(errors) > 1 else ""
                    raise ImageError(errors[0] + more)
                x = model.split.finish(images.to(device, non_blocking=True)).contiguous(
                    memory_format=torch.channels_last)
                with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=use_amp):
                    logits = module(x)
                if isinstance(logits, (tuple, list)):
                    logits = logits[0]
                idx = index.numpy()
                topk[idx] = logits.float().topk(TOPK, dim=1).indices.cpu().numpy()
                if divergence_layers:
                    sets_in_batch = set_of_item[idx]
                    for layer in divergence_layers:
                        feats = captured[layer].cpu().numpy()
                        for s in np.unique(sets_in_batch):
                            m = moments[set_names[s]].get(layer)
                            if m is None:
                                m = moments[set_names[s]][layer] = Moments.empty(feats.shape[1])
                            m.update(feats[sets_in_batch == s])
                bar.update(len(idx))
    finally:
        bar.close()
        for h in handles:
            h.remove()
    n = plan.n
    predictions = {name: topk[i * n:(i + 1) * n] for i, name in enumerate(set_names)}
    settings = {"batch_size": batch_size, "workers": workers, "amp": use_amp,
                "channels_last": True, "divergence_layers": list(divergence_layers)}
    return EvalResult(plan, model, predictions, moments, device, settings)


__all__ = ["run", "EvalResult", "CLEAN", "TOPK"]
