"""instafilters: the 20 ImageNet-Instagram filters (and 21 more) as fast, exact pipelines.

    >>> import instafilters
    >>> out = instafilters.apply(image, "toaster", strength=0.5)   # PIL image or uint8 array
    >>> filters = instafilters.load_filters()                      # registry of compiled filters
    >>> filters["lordkelvin"](rgb_array)
"""
from __future__ import annotations

import numpy as np

from .compile import CompiledFilter, compile
from .errors import ImageError, InstafiltersError, RecipeError, UnknownFilterError
from .io import load_rgb
from .recipe import FilterRecipe, load_recipe_file
from .registry import FilterRegistry, load_filters

__version__ = "0.2.0"
__all__ = ["apply", "load_filters", "list_filters", "compile", "CompiledFilter",
           "FilterRecipe", "FilterRegistry", "load_recipe_file", "InstafiltersError",
           "RecipeError", "ImageError", "UnknownFilterError", "__version__"]


def _bundled() -> FilterRegistry:
    """The process-wide bundled registry, shared with the transforms and `eval` (one
    compile per filter per process, not one here and one there)."""
    from .transforms import filter_registry
    return filter_registry()


def list_filters(which: str = "all") -> list[str]:
    """Names of the bundled filters: 'paper' (the 20), 'extra' or 'all'."""
    return _bundled().names(which)


def apply(image, name: str, strength: float = 1.0):
    """Apply a bundled filter to a PIL image, a uint8 array or a path.

    Returns the same kind it was given (a PIL image for a PIL image or a path, else an array).
    """
    from PIL import Image
    rgb = load_rgb(image)
    out = _bundled()[name](rgb, strength=strength)
    return out if isinstance(image, np.ndarray) else Image.fromarray(out, "RGB")
