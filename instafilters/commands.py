"""The filter commands: list, apply, preview (build, fit and eval live with their modules)."""
from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from . import io
from .files import display
from .cli_options import (filters_option, quality_option, recipe_options, registry_from,
                          strength_option)
from .preview import filter_sheet


@click.command("list")
@filters_option
@recipe_options
def list_command(filters, recipes, recipes_only):
    """List filters with aliases, description and calibration fidelity (mean CIEDE2000).

    \b
    Examples:
      instafilters list --filters all
      instafilters list --recipes my.yaml --filters myfilter,toaster
    """
    registry = registry_from(recipes, recipes_only)
    rows = []
    for name in registry.select(filters):
        r = registry.recipes[name]
        cal = r.calibration
        fidelity = (f"{cal['de_mean']:.2f}" if "de_mean" in cal else "-")
        rows.append((name, ", ".join(r.aliases) or "-", r.set, fidelity, r.description))
    header = ("name", "aliases", "set", "dE00", "description")
    widths = [max(len(str(x[i])) for x in rows + [header]) for i in range(4)]
    for row in [header] + rows:
        cells = [str(c).ljust(w) for c, w in zip(row[:4], widths)]
        click.echo("  ".join(cells) + "  " + row[4])


@click.command("apply")
@click.option("-f", "--filter", "filter_name", required=True, help="Filter name or alias.")
@strength_option()
@quality_option()
@recipe_options
@click.argument("input_path", metavar="INPUT", type=click.Path(dir_okay=False))
@click.argument("output_path", metavar="OUTPUT", type=click.Path(dir_okay=False))
def apply_command(filter_name, strength, quality, recipes, recipes_only, input_path, output_path):
    """Apply one filter to one image; the output format follows OUTPUT's extension.

    \b
    Examples:
      instafilters apply -f lordkelvin --strength 0.8 photo.jpg kelvin.png
      instafilters apply -f toaster --quality 95 photo.jpg toaster.jpg
      instafilters apply --recipes my.yaml -f myfilter photo.jpg out.jpg
    """
    registry = registry_from(recipes, recipes_only)
    compiled = registry[filter_name]
    io.format_for(output_path)  # fail on a bad extension before decoding
    decoded = io.decode(input_path)
    io.save(compiled(decoded.rgb, strength), output_path, quality, decoded.orientation)
    click.echo(f"{display(input_path)} -> {display(output_path)} ({compiled.name}, "
               f"strength {strength:g})")


@click.command("preview")
@click.argument("image_path", metavar="IMAGE", type=click.Path(dir_okay=False))
@click.option("-o", "--output", default="preview.jpg", show_default=True,
              type=click.Path(dir_okay=False), help="Contact sheet to write.")
@click.option("--width", type=click.IntRange(32, 2000), default=240, show_default=True,
              help="Width of each thumbnail in pixels.")
@strength_option()
@filters_option
@recipe_options
def preview_command(image_path, output, width, strength, filters, recipes, recipes_only):
    """Write a labelled contact sheet of IMAGE under every selected filter.

    \b
    Examples:
      instafilters preview photo.jpg -o sheet.jpg --filters all
      instafilters preview photo.jpg -o half.jpg --strength 0.5 --width 320
    """
    registry = registry_from(recipes, recipes_only)
    names = registry.select(filters)
    io.format_for(output)
    sheet = filter_sheet(io.decode(image_path).rgb, registry, names, width, strength)
    sheet_array = np.asarray(sheet)
    io.save(sheet_array, output, quality=92)
    click.echo(f"wrote {display(output)} ({len(names)} filters, {sheet_array.shape[1]}x"
               f"{sheet_array.shape[0]})")
