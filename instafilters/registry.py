"""Bundled and user recipes: names, aliases, sets, compiled on first use.

Like timm's model registry: every filter can be listed and looked up by name or alias,
so tests parametrize over the whole registry.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterable, Iterator

from .compile import CompiledFilter
from .errors import InstafiltersError, RecipeError, UnknownFilterError
from .recipe import FilterRecipe, check_unique, load_recipe_file

BUNDLED_RECIPES = Path(__file__).with_name("filters.yaml")  # symlink to the repo's filters.yaml
PAPER = "paper"


class FilterRegistry:
    """Ordered mapping name -> CompiledFilter, with aliases and the paper/extra sets."""

    def __init__(self, recipes: Iterable[FilterRecipe]):
        self.recipes = {r.name: r for r in recipes}
        check_unique(self.recipes.values(), file="<merged recipes>")
        self._alias = {}
        for r in self.recipes.values():
            self._alias[r.name] = r.name
            for a in r.aliases:
                self._alias[a] = r.name
        self._compiled: dict[str, CompiledFilter] = {}

    # -- lookup
    def canonical(self, name: str) -> str:
        key = str(name).strip().lower()
        if key not in self._alias:
            raise UnknownFilterError(
                f"unknown filter {name!r}; known: {', '.join(self.recipes)}")
        return self._alias[key]

    def __getitem__(self, name: str) -> CompiledFilter:
        canonical = self.canonical(name)
        if canonical not in self._compiled:
            self._compiled[canonical] = CompiledFilter(self.recipes[canonical])
        return self._compiled[canonical]

    def __contains__(self, name) -> bool:
        return str(name).strip().lower() in self._alias

    def __iter__(self) -> Iterator[str]:
        return iter(self.recipes)

    def __len__(self) -> int:
        return len(self.recipes)

    def names(self, which: str = "all") -> list[str]:
        """Canonical names of a set: 'paper', 'extra' or 'all', in file order."""
        return [n for n, r in self.recipes.items() if which == "all" or r.set == which]

    def select(self, spec: str | Iterable[str] = PAPER) -> list[str]:
        """'paper' (the 20 of ImageNet-Instagram), 'all', or a comma list of names/aliases."""
        if isinstance(spec, str):
            if spec.strip().lower() in ("paper", "all", "extra"):
                return self.names(spec.strip().lower())
            spec = [s for s in spec.split(",") if s.strip()]
        chosen = []
        for s in spec:
            name = self.canonical(s)
            if name not in chosen:
                chosen.append(name)
        if not chosen:
            raise InstafiltersError("no filters selected")
        return chosen


def load_filters(path=None, merge: bool = True) -> FilterRegistry:
    """The bundled recipes, or `path`'s merged over them (same name replaces, new ones add);
    `merge=False` uses `path` alone.

    A user filter that replaces a bundled one keeps its set (a `toaster` override stays in
    `paper`, so `--filters paper` is still the twenty) unless it says `set:` itself; a new
    filter that does not say is `extra`."""
    bundled = load_recipe_file(BUNDLED_RECIPES, default_set="extra")
    if path is None:
        return FilterRegistry(bundled)
    user = load_recipe_file(path, default_set=None)
    if not merge:
        return FilterRegistry(_with_set(r, None) for r in user)
    merged = {r.name: r for r in bundled}
    user_names = {r.name for r in user}
    for r in user:
        merged[r.name] = _with_set(r, merged.get(r.name))
    # aliases of a user filter may not shadow another bundled filter
    taken = {}
    for r in merged.values():
        for key in (r.name, *r.aliases):
            if key in taken and taken[key] != r.name:
                owner = r if r.name in user_names else merged[taken[key]]
                raise RecipeError(f"name or alias {key!r} is already used by filter "
                                  f"{taken[key] if owner is r else r.name!r}",
                                  file=path, filter=owner.name, field="aliases")
            taken[key] = r.name
    return FilterRegistry(merged.values())


def _with_set(recipe: FilterRecipe, replaced: FilterRecipe | None) -> FilterRecipe:
    if recipe.set is not None:
        return recipe
    return dataclasses.replace(recipe, set=replaced.set if replaced else "extra")
