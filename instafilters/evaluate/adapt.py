"""Test-time BatchNorm adaptation (Schneider et al. 2020, "Improving robustness against
common corruptions by covariate shift adaptation"): replace every BatchNorm layer's running
statistics by those of the target images (here: one filter's images), then score.

How much of a filter's damage this recovers measures how much of it is style living in
the normalisation statistics. Full adaptation (the paper's N = 0 prior): the statistics are
the plain average over the target batches (momentum None), in loader order, so a rerun
with the same batches gives the same numbers. The model is restored exactly afterwards.
torch is imported inside functions only.
"""
from __future__ import annotations

from contextlib import contextmanager


def batchnorm_layers(module) -> list:
    from torch.nn.modules.batchnorm import _BatchNorm
    return [m for m in module.modules() if isinstance(m, _BatchNorm)]


@contextmanager
def bn_adapting(module):
    """Within the block, `module` is in eval mode except its BatchNorm layers, whose running
    statistics are reset and re-estimated from every forward pass (a cumulative average):
    run the target images through it, call `module.eval()`, and score with the adapted
    statistics. On exit the buffers, momentum and modes are restored exactly."""
    layers = batchnorm_layers(module)
    saved = [({k: v.clone() for k, v in m.named_buffers(recurse=False)}, m.momentum,
              m.training) for m in layers]
    training = module.training
    try:
        module.eval()
        for m in layers:
            m.reset_running_stats()
            m.momentum = None
            m.train()
        yield layers
    finally:
        for m, (buffers, momentum, was_training) in zip(layers, saved):
            for k, v in m.named_buffers(recurse=False):
                v.copy_(buffers[k])
            m.momentum = momentum
            m.train(was_training)
        module.train(training)

