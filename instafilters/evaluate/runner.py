"""Batched inference over the clean tree and every filtered copy: one DataLoader for all sets
(workers start once) and for every model with the same preprocessing, inference_mode,
channels-last, AMP on CUDA, a progress bar in images/s.

torch is imported inside functions only.
"""
from __future__ import annotations

import logging
from contextlib import ExitStack
from dataclasses import dataclass, field

import numpy as np

from ..errors import ImageError, InstafiltersError
from .adapt import batchnorm_layers, bn_adapting
from .loader import ImageDataset, default_workers, filters_for, make_loader
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
    adapted: dict[str, np.ndarray] = field(default_factory=dict)  # filter -> top-5, --adapt bn


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


def preprocessing_key(model: LoadedModel) -> str:
    """Models with equal worker-side preprocessing share one decoding pass."""
    split = model.split
    return repr(split.cpu) if split.mean is not None else f"whole:{id(model)}"


def run_models(plan: EvalPlan, models: list[LoadedModel], device: str = "auto",
               batch_size: int = 64, workers: int | None = None, amp: bool = True,
               divergence_layers=(), progress: bool = True,
               adapt: str | None = None) -> list[EvalResult]:
    """Run every model on every image of every set of `plan`, decoding (and filtering, on
    the fly) once per group of models with the same preprocessing. `adapt="bn"`: also score
    each filter after re-estimating BatchNorm statistics on its images (adapt.py)."""
    import torch

    device = resolve_device(device)
    use_amp = amp and device == "cuda"
    workers = default_workers(device) if workers is None else workers
    if device == "cuda":  # the same algorithms every run, so two runs give the same numbers
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    ctx = _Context(plan, device, use_amp, batch_size, workers, progress, filters_for(plan))
    groups: dict[str, list[LoadedModel]] = {}
    for m in models:
        m.module.to(device).to(memory_format=torch.channels_last).eval()
        groups.setdefault(preprocessing_key(m), []).append(m)
    results = {}
    for group in groups.values():
        for model, (topk, moments) in zip(group, _score(ctx, group, divergence_layers)):
            results[id(model)] = _result(plan, model, topk, moments, device, ctx,
                                         divergence_layers)
        if adapt == "bn":
            for model, adapted in zip(group, _score_adapted(ctx, group)):
                results[id(model)].adapted = adapted
                results[id(model)].settings["adapt"] = "bn" if adapted else "none (no BatchNorm)"
    return [results[id(m)] for m in models]


@dataclass
class _Context:
    plan: EvalPlan
    device: str
    amp: bool
    batch_size: int
    workers: int
    progress: bool
    filters: dict

    def loader(self, items, transform):
        return make_loader(ImageDataset(items, transform, self.filters), self.batch_size,
                           self.workers, pin_memory=self.device == "cuda")


def _logits(ctx: _Context, loader, models, desc: str):
    """(item indices, [logits per model]) per batch; a bad file raises a one-line error."""
    import torch
    from tqdm import tqdm
    bar = tqdm(total=len(loader.dataset), unit="img", desc=desc, dynamic_ncols=True,
               disable=None if ctx.progress else True, smoothing=0.1)
    try:
        for images, index, errors in loader:
            if errors:
                more = f" (and {len(errors) - 1} more in this batch)" if len(errors) > 1 else ""
                raise ImageError(errors[0] + more)
            raw = images.to(ctx.device, non_blocking=True)
            outs = []
            for m in models:
                x = m.split.finish(raw).contiguous(memory_format=torch.channels_last)
                with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=ctx.amp):
                    logits = m.module(x)
                outs.append(logits[0] if isinstance(logits, (tuple, list)) else logits)
            yield index.numpy(), outs
            bar.update(len(index))
    finally:
        bar.close()


def _score(ctx: _Context, models, divergence_layers):
    """Top-5 over plan.items() and per-set layer moments, for each model."""
    import torch
    items = ctx.plan.items()
    set_names = list(ctx.plan.sets)
    set_of_item = np.array([s for s, _ in items], dtype=np.int64)
    hooks = [_hook_layers(m.module, divergence_layers) for m in models]
    moments = [{s: {} for s in set_names} for _ in models]
    topk = [np.full((len(items), TOPK), -1, dtype=np.int64) for _ in models]
    desc = "eval " + ", ".join(m.name for m in models)
    try:
        with torch.inference_mode():
            for idx, outs in _logits(ctx, ctx.loader(items, models[0].split.cpu), models, desc):
                for k, logits in enumerate(outs):
                    topk[k][idx] = logits.float().topk(TOPK, dim=1).indices.cpu().numpy()
                    _update_moments(moments[k], hooks[k][0], divergence_layers,
                                    set_of_item[idx], set_names)
    finally:
        for _, handles in hooks:
            for h in handles:
                h.remove()
    return list(zip(topk, moments))


def _update_moments(moments, captured, layers, sets_in_batch, set_names):
    for layer in layers:
        feats = captured[layer].cpu().numpy()
        for s in np.unique(sets_in_batch):
            m = moments[set_names[s]].get(layer)
            if m is None:
                m = moments[set_names[s]][layer] = Moments.empty(feats.shape[1])
            m.update(feats[sets_in_batch == s])


def _score_adapted(ctx: _Context, models) -> list[dict]:
    """Per model: filter -> top-5 after BN adaptation on that filter's images ({} and a
    one-line notice for a model without BatchNorm)."""
    import torch
    with_bn = [m for m in models if batchnorm_layers(m.module)]
    for m in models:
        if m not in with_bn:
            log.warning("%s has no BatchNorm layers: --adapt bn does not apply to it", m.name)
    out = {id(m): {} for m in models}
    for s, name in enumerate(ctx.plan.sets):
        if name == CLEAN or not with_bn:
            continue
        items = [(s, p) for p in ctx.plan.sets[name]]
        with ExitStack() as stack:
            for m in with_bn:
                stack.enter_context(bn_adapting(m.module))
            with torch.no_grad():
                for _ in _logits(ctx, ctx.loader(items, with_bn[0].split.cpu), with_bn,
                                 f"adapt BN to {name}"):
                    pass
            for m in with_bn:
                m.module.eval()
            topk = [np.full((len(items), TOPK), -1, dtype=np.int64) for _ in with_bn]
            with torch.inference_mode():
                for idx, outs in _logits(ctx, ctx.loader(items, with_bn[0].split.cpu),
                                         with_bn, f"eval {name} (BN adapted)"):
                    for k, logits in enumerate(outs):
                        topk[k][idx] = logits.float().topk(TOPK, dim=1).indices.cpu().numpy()
        for m, t in zip(with_bn, topk):
            out[id(m)][name] = t
    return [out[id(m)] for m in models]


def _result(plan, model, topk, moments, device, ctx, divergence_layers) -> EvalResult:
    n = plan.n
    predictions = {name: topk[i * n:(i + 1) * n] for i, name in enumerate(plan.sets)}
    settings = {"batch_size": ctx.batch_size, "workers": ctx.workers, "amp": ctx.amp,
                "channels_last": True, "divergence_layers": list(divergence_layers)}
    return EvalResult(plan, model, predictions, moments, device, settings)


__all__ = ["run_models", "EvalResult", "CLEAN", "TOPK"]
