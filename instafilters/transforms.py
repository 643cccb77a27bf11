"""Instagram filters as data-augmentation / evaluation transforms, exact to the build.

    >>> from instafilters.transforms import InstaFilter, RandomInstaFilter
    >>> InstaFilter("toaster", jpeg_quality=90)(pil_image)   # the pixels `build` would write
    >>> train = v2.Compose([RandomInstaFilter("paper"), v2.RandomResizedCrop(224), ...])

Each transform takes a PIL image, an HxWx3 uint8 array or a CHW uint8 tensor and returns
the same type. With `jpeg_quality` the filtered image is encoded exactly as `instafilters
build` encodes it (`io.encode_filtered`, the build's own call) and decoded again, so the
pixels equal those of the built file. Compiled filters are built once per process and
shared by every transform (`filter_registry`); a transform pickles as names and numbers,
so DataLoader workers receive it cheaply and compile on first use.

With torchvision >= 0.16 installed, `InstaFilter` and `RandomInstaFilter` are also
`torchvision.transforms.v2.Transform`s (labels, boxes and masks pass through). That class
is made when the attribute is first read, so importing this module never imports torch;
`InstaFilterCallable` and `RandomInstaFilterCallable` are the plain classes.
"""
from __future__ import annotations

import sys
from functools import lru_cache
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path

import numpy as np
from PIL import Image

from . import io
from .errors import InstafiltersError
from .registry import FilterRegistry, load_filters

RECIPE_SUFFIXES = (".yaml", ".yml")


# -- the filters of a process --------------------------------------------------------------

LIBRARY_NAMES = ("recipes_only=True", "a recipes file")
CLI_NAMES = ("--recipes-only", "--recipes FILE")


def check_recipes_only(recipes, recipes_only, error=InstafiltersError,
                       names=LIBRARY_NAMES) -> None:
    """recipes_only means the recipes file alone, so it needs one; the one check of the
    library and every command (which pass click.UsageError and CLI_NAMES: exit 2 with the
    usage, in the options' own names)."""
    if recipes_only and not recipes:
        raise error(f"{names[0]} needs {names[1]}")


def filter_registry(recipes=None, recipes_only: bool = False) -> FilterRegistry:
    """The process-wide registry for `recipes` (None: the bundled filters; a file: merged
    over them like `--recipes`, alone with `recipes_only`). Its compiled filters are made
    once per process and shared by every transform and dataset."""
    check_recipes_only(recipes, recipes_only)
    return _registry(str(Path(recipes).resolve()) if recipes else None, bool(recipes_only))


@lru_cache(maxsize=None)
def _registry(recipes: str | None, recipes_only: bool) -> FilterRegistry:
    return load_filters(recipes, merge=not recipes_only)


def select_filters(filters="paper", recipes=None, recipes_only=False):
    """Filter names as the CLI takes them ('paper', 'all', 'extra', 'a,b', a list of names or
    aliases) or a recipes file (every filter it defines) -> (canonical names, recipes as
    the resolved path that keys the registry, so a transform's lookup per image skips
    filter_registry's Path.resolve: 20 us, 3% of a filter call)."""
    if isinstance(filters, (str, Path)) and Path(filters).suffix.lower() in RECIPE_SUFFIXES:
        if recipes:
            raise InstafiltersError(f"filters={str(filters)!r} is a recipes file; pass "
                                    f"recipes={recipes!r} separately or not at all")
        from .recipe import load_recipe_file
        recipes = str(filters)
        filters = [r.name for r in load_recipe_file(recipes)]
    elif isinstance(filters, (set, frozenset)):
        filters = sorted(filters)
    names = filter_registry(recipes, recipes_only).select(filters)
    return tuple(names), (str(Path(recipes).resolve()) if recipes else None)


# -- exact pixels --------------------------------------------------------------------------

def build_pixels(compiled, rgb: np.ndarray, strength: float, quality: int | None,
                 fmt: str = "JPEG", orientation=None) -> np.ndarray:
    """What `instafilters build` writes for `rgb`, as decoded pixels (`quality` None: the
    raw filter output). `fmt` is the format the build picks from the file's extension."""
    if quality is None:
        return compiled(rgb, strength)
    data = io.encode_filtered(compiled, rgb, strength, fmt, quality, orientation)
    return io.decode_bytes(data).rgb


def read_image(path, transform: "InstaFilterCallable | None" = None) -> Image.Image:
    """`path` decoded as the build decodes it and, with `transform`, filtered to the pixels
    the build writes for it (its format from the extension, its EXIF orientation kept): the
    one read of InstagramImageNet and eval's on-the-fly loader."""
    decoded = io.decode(path)
    rgb = decoded.rgb
    if transform is not None:
        rgb = transform.pixels(rgb, io.format_for(path), decoded.orientation)
    return Image.fromarray(rgb, "RGB")


def _is_tensor(x) -> bool:
    torch = sys.modules.get("torch")  # not imported: x cannot be a tensor
    return torch is not None and isinstance(x, torch.Tensor)


def apply_to(image, fn):
    """Run `fn` (HxWx3 uint8 -> HxWx3 uint8) on a PIL image, an array or a CHW uint8
    tensor, returning the type it was given."""
    if isinstance(image, Image.Image):
        return Image.fromarray(fn(np.asarray(io.to_rgb(image))), "RGB")
    if isinstance(image, np.ndarray):
        return fn(io.load_rgb(image))
    if _is_tensor(image):
        import torch
        if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] not in (1, 3):
            raise ValueError(f"expected a CHW uint8 tensor with 1 or 3 channels, got "
                             f"{image.dtype} {tuple(image.shape)}")
        hwc = image.detach().cpu().expand(3, -1, -1).permute(1, 2, 0).numpy()
        out = fn(np.ascontiguousarray(hwc))
        out = torch.from_numpy(out if out.flags.writeable else out.copy())
        out = out.permute(2, 0, 1).contiguous()
        out = out.to(image.device)
        if type(image) is not torch.Tensor:  # keep a tv_tensors.Image an Image
            from torchvision import tv_tensors
            out = tv_tensors.wrap(out, like=image)
        return out
    raise TypeError(f"expected a PIL image, an HxWx3 uint8 array or a CHW uint8 tensor, got "
                    f"{type(image).__name__}")


def _unit(value, what: str) -> float:
    """A number in [0, 1] (a Python, numpy or 0-d torch number); bools, strings, NaN and
    anything with more than one value are refused by name."""
    if isinstance(value, (bool, str, bytes)) or np.ndim(value) != 0:
        raise InstafiltersError(f"{what} must be a number in [0, 1], got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InstafiltersError(f"{what} must be a number in [0, 1], got {value!r}") from None
    if not 0.0 <= number <= 1.0:  # NaN fails this too
        raise InstafiltersError(f"{what} must be a number in [0, 1], got {value!r}")
    return number + 0.0  # -0 -> 0


def _strengths(strength, fixed: bool) -> tuple:
    """(lo, hi) from a strength, or for RandomInstaFilter a range (lo, hi) with lo <= hi."""
    if isinstance(strength, (str, bytes)) or np.ndim(strength) == 0:
        s = _unit(strength, "strength")
        return s, s
    if fixed:
        raise InstafiltersError(f"strength must be a number in [0, 1], got {strength!r} (a "
                                f"range (lo, hi) is RandomInstaFilter's)")
    values = list(strength)
    if len(values) != 2:
        raise InstafiltersError(f"strength must be a number in [0, 1] or a range (lo, hi), "
                                f"got {strength!r}")
    lo, hi = (_unit(v, "strength") for v in values)
    if lo > hi:
        raise InstafiltersError(f"strength range must have lo <= hi, got {strength!r}")
    return lo, hi


def _check(jpeg_quality):
    if jpeg_quality is not None and (isinstance(jpeg_quality, bool) or not (
            isinstance(jpeg_quality, (int, np.integer)) and 1 <= jpeg_quality <= 100)):
        raise InstafiltersError(f"jpeg_quality must be an integer 1-100 or None, got "
                                f"{jpeg_quality!r}")


# -- the transforms ------------------------------------------------------------------------

class InstaFilterCallable:
    """One filter at a fixed strength; `jpeg_quality` (e.g. 90, the build's default) makes
    the output the pixels of the file `instafilters build --quality Q` writes."""

    def __init__(self, filter: str, strength: float = 1.0, jpeg_quality: int | None = None,
                 recipes=None, recipes_only: bool = False):
        _check(jpeg_quality)
        self.strength = _strengths(strength, fixed=True)[0]
        (self.filter,), self.recipes = select_filters([filter], recipes, recipes_only)
        self.recipes_only = bool(recipes_only)
        self.jpeg_quality = jpeg_quality

    @property
    def compiled(self):
        return _registry(self.recipes, self.recipes_only)[self.filter]

    def pixels(self, rgb: np.ndarray, fmt: str = "JPEG", orientation=None) -> np.ndarray:
        return build_pixels(self.compiled, rgb, self.strength, self.jpeg_quality, fmt,
                            orientation)

    def encode(self, image, fmt: str = "JPEG", orientation=None) -> bytes:
        """The bytes `instafilters build` writes for `image` (quality: jpeg_quality or 90)."""
        quality = io.DEFAULT_JPEG_QUALITY if self.jpeg_quality is None else self.jpeg_quality
        return io.encode_filtered(self.compiled, io.load_rgb(image), self.strength, fmt,
                                  quality, orientation)

    def apply(self, image):
        return apply_to(image, self.pixels)

    __call__ = apply

    def __repr__(self):
        return (f"{type(self).__name__}({self.filter!r}, strength={self.strength:g}, "
                f"jpeg_quality={self.jpeg_quality})")


class RandomInstaFilterCallable:
    """With probability `p`, one of `filters` (uniformly) at a strength drawn uniformly from
    `strength` (lo, hi) or fixed. Draws come from torch's global RNG when torch is
    installed (so `torch.manual_seed` and DataLoader worker seeding reproduce a run), else
    from a numpy generator seeded with `seed`."""

    def __init__(self, filters="paper", strength=(0.5, 1.0), p: float = 1.0,
                 jpeg_quality: int | None = None, recipes=None, recipes_only: bool = False,
                 seed: int = 0):
        _check(jpeg_quality)
        self.strength, self.p = _strengths(strength, fixed=False), _unit(p, "p")
        self.filters, self.recipes = select_filters(filters, recipes, recipes_only)
        self.recipes_only = bool(recipes_only)
        self.jpeg_quality = jpeg_quality
        self.seed, self._numpy_rng = seed, None

    def draw(self) -> dict:
        """{'filter': name or None (not applied), 'strength': s}: three uniform draws."""
        u = self._uniform(3)
        lo, hi = self.strength
        index = min(int(u[1] * len(self.filters)), len(self.filters) - 1)
        return {"filter": self.filters[index] if u[0] < self.p else None,
                "strength": lo + (hi - lo) * float(u[2])}

    def _uniform(self, n: int):
        if _torch_installed():
            import torch
            return torch.rand(n, dtype=torch.float64).tolist()
        if self._numpy_rng is None:
            self._numpy_rng = np.random.default_rng(self.seed)
        return self._numpy_rng.random(n).tolist()

    def apply(self, image, params: dict | None = None):
        params = params or self.draw()
        if params["filter"] is None:
            return image
        compiled = _registry(self.recipes, self.recipes_only)[params["filter"]]
        return apply_to(image, lambda rgb: build_pixels(compiled, rgb, params["strength"],
                                                        self.jpeg_quality))

    __call__ = apply

    def __repr__(self):
        names = ",".join(self.filters) if len(self.filters) <= 4 else f"{len(self.filters)} filters"
        return (f"{type(self).__name__}({names!r}, strength={self.strength}, p={self.p:g}, "
                f"jpeg_quality={self.jpeg_quality})")


@lru_cache(maxsize=1)
def _torch_installed() -> bool:
    return find_spec("torch") is not None


@lru_cache(maxsize=1)
def _torchvision_v2() -> bool:
    """torchvision >= 0.16 (the first with a public v2 Transform base class) is installed."""
    if not _torch_installed() or find_spec("torchvision") is None:
        return False
    major, minor = (int(x) for x in metadata.version("torchvision").split(".")[:2])
    return (major, minor) >= (0, 16)


def _v2_classes() -> dict:
    """InstaFilter and RandomInstaFilter as torchvision v2 Transforms (imports torch)."""
    import PIL.Image
    from torchvision import tv_tensors
    from torchvision.transforms import v2
    from torchvision.transforms.v2._utils import is_pure_tensor

    def is_image_array(x):
        """HxWxC arrays (C <= 4) are images: one that is not HxWx3/4 uint8 (a float image)
        is refused by load_rgb rather than passed through unfiltered; other arrays
        (labels, 2-D masks) pass through as v2 does with types it does not know."""
        return isinstance(x, np.ndarray) and x.ndim == 3 and x.shape[2] <= 4

    types = (tv_tensors.Image, PIL.Image.Image, is_pure_tensor, is_image_array)

    def as_v2(name, base, **methods):
        """`base` with v2.Transform's call protocol: torchvision finds the images among the
        inputs (leaving labels, boxes and masks alone) and calls `transform` on each."""
        def __init__(self, *args, **kwargs):
            v2.Transform.__init__(self)
            base.__init__(self, *args, **kwargs)

        namespace = {"__doc__": base.__doc__, "__module__": __name__, "__qualname__": name,
                     "_transformed_types": types, "__call__": v2.Transform.__call__,
                     "__repr__": base.__repr__, "__init__": __init__, **methods}
        for new, old in (("transform", "_transform"), ("make_params", "_get_params")):
            if new in methods:
                namespace[old] = methods[new]  # the names before torchvision 0.21
        return type(name, (base, v2.Transform), namespace)

    return {
        "InstaFilter": as_v2("InstaFilter", InstaFilterCallable,
                             transform=lambda self, inpt, params: self.apply(inpt)),
        "RandomInstaFilter": as_v2(
            "RandomInstaFilter", RandomInstaFilterCallable,
            make_params=lambda self, flat_inputs: self.draw(),
            transform=lambda self, inpt, params: self.apply(inpt, params)),
    }


def __getattr__(name):
    """`InstaFilter` / `RandomInstaFilter`: the v2 Transform classes with torchvision >= 0.16,
    else the plain callables; made once, on first access."""
    if name in ("InstaFilter", "RandomInstaFilter"):
        classes = _v2_classes() if _torchvision_v2() else {
            "InstaFilter": InstaFilterCallable, "RandomInstaFilter": RandomInstaFilterCallable}
        globals().update(classes)
        return classes[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["InstaFilter", "RandomInstaFilter", "InstaFilterCallable",
           "RandomInstaFilterCallable", "build_pixels", "filter_registry", "select_filters"]
