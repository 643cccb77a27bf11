"""The torch side of reading images: a map-style dataset, its collate and the DataLoader.

torch is imported inside functions only.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import ImageError
from ..transforms import InstaFilterCallable, read_image


class ImageDataset:
    """Map-style dataset over (set index, path): decodes with instafilters.io (as the build
    does), filters on the fly where `filters` maps the set index to a transform (the
    build's pixels: transforms.InstaFilterCallable.pixels), and applies `transform`, the CPU
    part of the model's own preprocessing (PIL resize and crop to a uint8 tensor; see
    preprocessing.split_transform). A file that cannot be read comes back as its error
    message, so the main process can raise a one-line error (a worker's exception would
    arrive wrapped in a traceback)."""

    def __init__(self, items: list[tuple[int, Path]], transform, filters: dict | None = None):
        self.items = items
        self.transform = transform
        self.filters = filters or {}

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        s, path = self.items[i]
        try:
            image = read_image(path, self.filters.get(s))
        except ImageError as e:
            return None, i, str(e)
        except (OSError, ValueError) as e:  # the encoder: e.g. a JPEG side over 65,535
            return None, i, f"{path}: cannot filter with {self.filters[s].filter} ({e})"
        return self.transform(image), i, None


def collate(batch):
    import torch
    errors = [e for _, _, e in batch if e is not None]
    if errors:
        return None, None, errors
    images = torch.stack([x for x, _, _ in batch])
    return images, torch.tensor([i for _, i, _ in batch], dtype=torch.long), None


def default_workers(device_type: str) -> int:
    """Decoding feeds a GPU only with many processes; on CPU the model needs the cores.
    Cores counted as `instafilters build` counts them (joblib: CPU affinity and cgroup
    limits, so a 4-CPU Slurm or Docker slot of a 64-core node gets 4, not 16, workers)."""
    from joblib import cpu_count
    cpus = max(1, cpu_count())
    return min(16, cpus) if device_type == "cuda" else max(1, min(4, cpus // 4))


def filters_for(plan) -> dict:
    """Set index -> the on-the-fly transform of a plan's filter sets ({} for a built tree)."""
    if plan.filtering is None:
        return {}
    f = plan.filtering
    return {s: InstaFilterCallable(name, f["strength"], f["jpeg_quality"], f["recipes"],
                                   f["recipes_only"])
            for s, name in enumerate(plan.sets) if s > 0}


def make_loader(dataset: ImageDataset, batch_size: int, workers: int, pin_memory: bool):
    from torch.utils.data import DataLoader
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
                      collate_fn=collate, pin_memory=pin_memory,
                      prefetch_factor=4 if workers > 0 else None,
                      persistent_workers=False)
