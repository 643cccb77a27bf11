"""`instafilters fit`: before/after pairs -> a recipe file, with its fidelity on each pair."""
from __future__ import annotations

from pathlib import Path

import click

from ..errors import InstafiltersError
from ..files import check_writable
from ..fidelity import fidelity
from ..recipe_yaml import to_yaml
from .model import COLOUR, FULL, Structure
from .pairs import load_image
from .search import fit_recipe, score

STRUCTURES = {"auto": None, "full": FULL, "simple": COLOUR}


def _frame(value):
    if value is None:
        return None
    dims = value.lower().split("x")
    if len(dims) != 2 or not all(d.isdigit() and int(d) > 0 for d in dims):
        raise click.BadParameter(f"expected HEIGHTxWIDTH like 1080x1080, got {value!r}",
                                 param_hint="--frame")
    return int(dims[0]), int(dims[1])


@click.command("fit")
@click.option("--before", "befores", multiple=True, required=True,
              type=click.Path(dir_okay=False), help="Original image (repeat for more pairs).")
@click.option("--after", "afters", multiple=True, required=True,
              type=click.Path(dir_okay=False), help="Filtered image, pixel aligned with "
              "the --before of the same position.")
@click.option("--name", required=True, help="Filter name (a lowercase slug).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Recipe YAML to write (default: print it).")
@click.option("--hald", "halds", multiple=True, type=click.Path(dir_okay=False),
              help="A colour-sampling pattern (repeatable) ...")
@click.option("--hald-after", "hald_afters", multiple=True, type=click.Path(dir_okay=False),
              help="... and the filter's output of it, pixel aligned.")
@click.option("--structure", type=click.Choice(list(STRUCTURES)), default="auto",
              show_default=True, help="auto: the cheapest pipeline within 0.15 dE00 of the "
              "best; full: curves, matrix, curves, vignette and glow; simple: no vignettes.")
@click.option("--frame", default=None, metavar="HxW",
              help="The pairs are the top-left part of an HxW frame the filter saw "
              "(e.g. crops of square app output: 1080x1080); vignettes are fitted in it.")
def fit_command(befores, afters, name, output, halds, hald_afters, structure, frame):
    """Fit a recipe (curves -> colour matrix -> curves, or vignettes and a glow in place of
    the second curves) to before/after pairs and print the fidelity (CIEDE2000 of the
    compiled filter) on each pair.

    \b
    Examples:
      instafilters fit --before normal.jpg --after toaster.jpg --name mytoaster -o my.yaml
      instafilters apply --recipes my.yaml -f mytoaster photo.jpg out.jpg
      instafilters fit --before a.jpg --after a-f.jpg --before b.jpg --after b-f.jpg \\
          --hald hald.png --hald-after hald-f.jpg --structure simple --name myfilter
      instafilters fit --before ../shared/calibration/instagram/Normal.jpg \\
          --after ../shared/calibration/instagram/Toaster.jpg --frame 1080x1080 \\
          --name mytoaster -o my.yaml
    """
    from ..io import atomic_write_bytes
    from ..fields import Invalid, slug
    from ..recipe import load_recipe_file

    if len(befores) != len(afters):
        raise click.UsageError(f"got {len(befores)} --before but {len(afters)} --after; "
                               "give them in pairs")
    if len(halds) != len(hald_afters):
        raise click.UsageError(f"got {len(halds)} --hald but {len(hald_afters)} "
                               "--hald-after; give them in pairs")
    try:
        slug(name)  # the one check of names, the recipe loader's
    except Invalid as e:
        raise click.BadParameter(str(e), param_hint="--name") from None
    frame = _frame(frame)
    if output:
        check_writable(output)
    pairs = list(zip(befores, afters))
    recipe = fit_recipe(pairs, name, hald=list(zip(halds, hald_afters)),
                        structure=STRUCTURES[structure], frame=frame)
    text = to_yaml([recipe], header="# written by `instafilters fit`")
    for before, after in pairs:
        b, a = load_image(before, before), load_image(after, after)
        f = score(recipe, b, a, frame)
        click.echo(f"{after}: mean dE00 {f.mean:.2f}, p95 {f.p95:.2f} "
                   f"(do nothing: {fidelity(b, a).mean:.2f})")
    if not output:
        click.echo(text, nl=False)
        return
    try:
        atomic_write_bytes(output, text.encode("utf-8"))
    except OSError as e:
        raise InstafiltersError(f"{output}: cannot write: {e.strerror or e}") from None
    written = load_recipe_file(output)  # what we wrote must load
    click.echo(f"wrote {output} ({Structure.of(written[0]).label()})")
