"""A model's preprocessing split between the DataLoader workers and the device.

Workers run the PIL steps (resize, crop) and hand over uint8 CHW tensors; the device does
the float conversion and normalisation on whole batches (`SplitTransform.finish`), with the
same float32 operations in the same order as the model's own transform, so the numbers are
identical. torch and torchvision are imported inside functions only.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


MAX_ASPECT = 16  # ImageNet's widest photos are under 10:1


def central_part(image):
    """A PIL image longer than MAX_ASPECT times its short side, cut to its central
    MAX_ASPECT x short part, the only part a resize-then-centre-crop can reach: resizing a
    1x20000 image whole made 256x5,120,000 pixels (4 GB, then MemoryError) in a loader
    worker. Every other image is untouched, so its pixels are torchvision's."""
    w, h = image.size
    keep = MAX_ASPECT * min(w, h)
    if max(w, h) <= keep:
        return image
    start = (max(w, h) - keep) // 2
    return image.crop((start, 0, start + keep, h) if w > h else (0, start, w, start + keep))


class PilPart:
    """The PIL steps of a model's transform (resize, crop), then a uint8 CHW tensor: what the
    DataLoader workers do. A quarter of float32's bytes to pass between processes and copy
    to the GPU, and no float work on the CPU."""

    def __init__(self, ops):
        self.ops = list(ops)

    def __call__(self, image):
        from torchvision.transforms import functional as F
        image = central_part(image)
        for op in self.ops:
            image = op(image)
        return F.pil_to_tensor(image)

    def __repr__(self):
        return f"PilPart({self.ops})"


class ResizeCrop:
    """torchvision's ImageClassification preset up to (not including) the float conversion."""

    def __init__(self, resize_size, crop_size, interpolation, antialias):
        self.resize_size, self.crop_size = resize_size, crop_size
        self.interpolation, self.antialias = interpolation, antialias

    def __call__(self, image):
        from torchvision.transforms import functional as F
        image = F.resize(image, self.resize_size, interpolation=self.interpolation,
                         antialias=self.antialias)
        return F.center_crop(image, self.crop_size)

    def __repr__(self):  # equal settings, equal repr: models with it share decoding
        return (f"ResizeCrop({self.resize_size}, {self.crop_size}, {self.interpolation}, "
                f"antialias={self.antialias})")


@dataclass
class SplitTransform:
    """`cpu` (PIL -> uint8 tensor) then `finish` on a batch on the device: x.float() / 255,
    minus mean, divided by std: the same float32 operations, in the same order, as
    torchvision's ToTensor/convert_image_dtype + Normalize, so the numbers are identical.
    `mean` None: `cpu` is the whole transform (an unknown layout) and finish only casts."""
    cpu: Any
    mean: tuple | None = None
    std: tuple | None = None

    def finish(self, batch):
        import torch
        if self.mean is None:
            return batch.float()
        mean = torch.as_tensor(self.mean, dtype=torch.float32, device=batch.device)
        std = torch.as_tensor(self.std, dtype=torch.float32, device=batch.device)
        x = batch.to(torch.float32).div(255)
        return x.sub_(mean.view(1, -1, 1, 1)).div_(std.view(1, -1, 1, 1))


def split_transform(transform) -> SplitTransform:
    """Split a torchvision preset or a timm eval Compose at its tensor conversion."""
    from torchvision.transforms import Compose, Normalize, ToTensor
    from torchvision.transforms._presets import ImageClassification
    if isinstance(transform, ImageClassification):
        return SplitTransform(PilPart([ResizeCrop(transform.resize_size, transform.crop_size,
                                                  transform.interpolation, transform.antialias)]),
                              tuple(transform.mean), tuple(transform.std))
    if isinstance(transform, Compose):
        # torchvision's ToTensor (timm's MaybeToTensor subclasses it) divides by 255; timm's
        # own ToTensor does not, so it is not a cut point
        ops = transform.transforms
        cut = [i for i, op in enumerate(ops) if isinstance(op, ToTensor)]
        if len(cut) == 1 and cut[0] == len(ops) - 2 and isinstance(ops[-1], Normalize):
            return SplitTransform(PilPart(ops[:cut[0]]), tuple(map(float, ops[-1].mean)),
                                  tuple(map(float, ops[-1].std)))
    log.info("unknown transform layout, running it whole in the workers: %r", transform)
    return SplitTransform(transform)
