"""Options shared by several commands, defined once so they mean the same everywhere.

Every value is checked as a whole before any work: a bad one is a usage error (exit 2).
"""
from __future__ import annotations

import math

import click

from .errors import InstafiltersError
from .io import DEFAULT_JPEG_QUALITY
from .paths import split_list, strength_folder
from .registry import FilterRegistry, load_filters
from .transforms import CLI_NAMES, check_recipes_only

recipes_option = click.option(
    "--recipes", "recipes", type=click.Path(dir_okay=False), default=None,
    help="Your own recipe YAML, merged over the bundled filters (same name replaces).")
recipes_only_option = click.option(
    "--recipes-only", is_flag=True, help="Use --recipes alone, without the bundled filters.")
filters_option = click.option(
    "--filters", "filters", default="paper", show_default=True,
    help="'paper' (the 20 ImageNet-Instagram filters), 'all', or a comma list of names/aliases.")


def registry_from(recipes, recipes_only=False) -> FilterRegistry:
    check_recipes_only(recipes, recipes_only, click.UsageError, CLI_NAMES)
    return load_filters(recipes, merge=not recipes_only)


def recipe_options(f):
    return recipes_option(recipes_only_option(f))


def strength_value(text) -> float:
    """One strength: a finite number in [0, 1] (NaN and inf compare false with every bound,
    so they are refused by name)."""
    try:
        s = float(text)
    except (TypeError, ValueError):
        raise click.BadParameter(f"expected a number in [0, 1], got {text!r}") from None
    if not math.isfinite(s) or not 0.0 <= s <= 1.0:
        raise click.BadParameter(f"expected a number in [0, 1], got {text!r}")
    return s + 0.0  # -0 -> 0: '-0,0' made two folders, '-0' and '0', of the same images


def strength_list(values) -> tuple:
    """--strength S[,S...] (repeatable) -> distinct strengths in the order given; refuses an
    empty list and two values that would share one folder name."""
    out, names = [], {}
    for value in values:
        for part in str(value).split(","):
            part = part.strip()
            if not part:
                continue
            s = strength_value(part)
            name = strength_folder(s)
            if name in names and names[name] != s:
                raise click.BadParameter(
                    f"{names[name]!r} and {s!r} would both be written to the folder {name!r}: "
                    f"give strengths that differ in their first 6 significant digits")
            if name not in names:
                names[name] = s
                out.append(s)
    if not out:
        raise click.BadParameter("expected at least one number in [0, 1]")
    return tuple(out)


def _strength(ctx, param, value):
    return None if value is None else strength_value(value)


def _strengths(ctx, param, values):
    return strength_list(values or ("1",))


def strength_option(default=1.0, help="Mix of filtered and original, like Instagram's slider "
                                      "(0 = original)."):
    """A single strength (apply, preview, eval)."""
    return click.option("--strength", default=default, callback=_strength, metavar="S",
                        show_default=default is not None, help=help)


strengths_option = click.option(
    "--strength", "strengths", multiple=True, callback=_strengths, metavar="S[,S...]",
    help="Filter strength(s) in [0, 1]; several (0.25,0.5,1) write "
         "<out>/<filter>/<strength>/... like ImageNet-C severities.  [default: 1]")


def quality_option(help="JPEG/WebP quality of the output."):
    return click.option("--quality", type=click.IntRange(1, 100), default=DEFAULT_JPEG_QUALITY,
                        show_default=True, help=help)


def split_names(text) -> str | None:
    """--split NAME[,NAME]: each a folder inside the tree ('.' = all of it); refuses '..' and
    absolute paths, so nothing derived from it can leave its root."""
    if text is None:
        return None
    try:
        names = [name or "." for name in split_list(text)]
    except InstafiltersError as e:
        raise click.BadParameter(str(e)) from None
    if not names:
        raise click.BadParameter(f"expected folder names, got {text!r}")
    return ",".join(names)


def split_option(default=None, help="Only these folders of the tree, e.g. val.",
                 metavar="NAME[,NAME]"):
    return click.option("--split", default=default, show_default=default is not None,
                        metavar=metavar, callback=lambda c, p, v: split_names(v),
                        help=help)


limit_per_class_option = click.option(
    "--limit-per-class", type=click.IntRange(1), default=None, metavar="K",
    help="Only the first K images (by name) of each class folder: quick subsets.")
