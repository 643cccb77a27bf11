"""ImageNet-Instagram without writing it: a map-style dataset over a clean ImageNet tree.

    >>> from torch.utils.data import DataLoader
    >>> ds = InstagramImageNet("imagenet/", "toaster", transform=model_transform)
    >>> image, label = ds[0]                      # the pixels of imagenet-ig/toaster/val/...
    >>> ds = InstagramImageNet("imagenet/", "paper")  # 20 filters: (image, label, filter_index)

Images are found as `instafilters build` and `instafilters eval` find them (sorted, hidden
and temporary files skipped). Labels are ImageNet-1k indices of the wnid folders (-1 for a
folder that is not a wnid), never ImageFolder's alphabetical index. With `jpeg_quality`
(default 90, the build's) every image is the decoded pixels of the file the build would
write. No torch needed: it is a plain class with `__len__` and `__getitem__`.
"""
from __future__ import annotations

from pathlib import Path

from . import io
from .evaluate.labels import wnid_label
from .evaluate.pairing import clean_images
from .transforms import InstaFilterCallable, read_image, select_filters


class InstagramImageNet:
    """Length = images x filters, filter by filter (index i: filter i // images, image
    i % images). Items are `(image, label)` for one filter, `(image, label, filter_index)`
    for several; `image` is a PIL image, or `transform(image)`."""

    def __init__(self, root, filters="paper", strength: float = 1.0, split: str | None = "val",
                 jpeg_quality: int | None = io.DEFAULT_JPEG_QUALITY, transform=None,
                 recipes=None, recipes_only: bool = False):
        self.root = Path(root)
        self.split, found = clean_images(self.root, split)
        self.samples = [(found[k], wnid_label(k)) for k in sorted(found)]
        self.targets = [label for _, label in self.samples]
        self.filters, recipes = select_filters(filters, recipes, recipes_only)
        self.transforms = [InstaFilterCallable(f, strength, jpeg_quality, recipes, recipes_only)
                           for f in self.filters]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples) * len(self.filters)

    def __getitem__(self, index: int):
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        filter_index, i = divmod(index % len(self), len(self.samples))
        path, label = self.samples[i]
        image = read_image(path, self.transforms[filter_index])
        if self.transform is not None:
            image = self.transform(image)
        return (image, label) if len(self.filters) == 1 else (image, label, filter_index)

    def __repr__(self):
        return (f"InstagramImageNet({str(self.root)!r}, {len(self.samples)} images x "
                f"{len(self.filters)} filters, split={self.split!r})")


__all__ = ["InstagramImageNet"]
