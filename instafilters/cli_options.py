"""Options shared by several commands, so every command spells them the same way."""
from __future__ import annotations

import click

from .registry import FilterRegistry, load_filters

recipes_option = click.option(
    "--recipes", "recipes", type=click.Path(dir_okay=False), default=None,
    help="Your own recipe YAML, merged over the bundled filters (same name replaces).")
recipes_only_option = click.option(
    "--recipes-only", is_flag=True, help="Use --recipes alone, without the bundled filters.")
filters_option = click.option(
    "--filters", "filters", default="paper", show_default=True,
    help="'paper' (the 20 ImageNet-Instagram filters), 'all', or a comma list of names/aliases.")


def registry_from(recipes, recipes_only=False) -> FilterRegistry:
    if recipes_only and not recipes:
        raise click.UsageError("--recipes-only needs --recipes FILE")
    return load_filters(recipes, merge=not recipes_only)


def recipe_options(f):
    return recipes_option(recipes_only_option(f))
