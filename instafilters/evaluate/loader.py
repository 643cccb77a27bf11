"""The torch side of reading images: a map-style dataset, its collate and the DataLoader.

torch is imported inside functions only.
"""
from __future__ import annotations

import os
from pathlib import Path

from .. import io
from ..errors import ImageError


class ImageDataset:
    """Map-style dataset over (set index, path): decodes with instafilters.io (as the build
    does) and applies `transform`, the CPU part of the model's own preprocessing (PIL resize
    and crop to a uint8 tensor; see preprocessing.split_transform). A file that cannot be read
    comes back as its error message, so the main process can raise a one-line error (a
    worker's exception would arrive wrapped in a traceback)."""

    def __init__(self, items: list[tuple[int, Path]], transform):
        self.items = items
        self.transform = transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        from PIL import Image
        _, path = self.items[i]
        try:
            image = Image.fromarray(io.decode(path).rgb, "RGB")
        except ImageError as e:
            return None, i, str(e)
        return self.transform(image), i, None


def collate(batch):
    import torch
    errors = [e for _, _, e in batch if e is not None]
    if errors:
        return None, None, errors
    images = torch.stack([x for x, _, _ in batch])
    return images, torch.tensor([i for _, i, _ in batch], dtype=torch.long), None


def default_workers(device_type: str) -> int:
    """Decoding feeds a GPU only with many processes; on CPU the model needs the cores."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        cpus = os.cpu_count() or 1
    return min(16, cpus) if device_type == "cuda" else max(1, min(4, cpus // 4))


def make_loader(dataset: ImageDataset, batch_size: int, workers: int, pin_memory: bool):
    from torch.utils.data import DataLoader
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
                      collate_fn=collate, pin_memory=pin_memory,
                      prefetch_factor=4 if workers > 0 else None,
                      persistent_workers=False)
