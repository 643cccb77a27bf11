"""`instafilters build`: the click command. Heavy imports (joblib, dask) happen in build.py."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from ..cli_options import (filters_option, limit_per_class_option, quality_option,
                           recipe_options, registry_from, split_option, strengths_option)
from ..errors import InstafiltersError

MAX_RESIZE = 16384  # a shorter side beyond this is no dataset; outputs are bounded per image too


def _jobs(ctx, param, value):
    """All cores by default; never more processes than cores (more only add memory)."""
    from joblib import cpu_count
    cores = max(1, cpu_count())  # respects CPU affinity and cgroup limits (Slurm, Docker)
    return cores if value is None or value <= 0 else min(value, cores)


@click.command("build")
@click.option("--src", required=True, type=click.Path(exists=True, file_okay=False),
              help="Source tree, e.g. imagenet/ holding train/<wnid>/*.JPEG and val/<wnid>/*.JPEG.")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Output root: writes <out>/<filter>/<path relative to --src>.")
@filters_option
@recipe_options
@click.option("-j", "--jobs", type=int, default=None, callback=_jobs,
              help="Worker processes, at most the cores available.  [default: all cores]")
@quality_option(help="JPEG quality. 90 matches the ImageNet originals (~q90): lower adds its "
                    "own compression artefacts on top of the filter.")
@strengths_option
@click.option("--resize", type=click.IntRange(8, MAX_RESIZE), default=None, metavar="SHORT",
              help="Resize the shorter side to SHORT pixels before filtering (small copies).")
@split_option(help="Only these folders of --src (paths inside it, comma-separated), "
                   "e.g. val or train/n01440764.")
@limit_per_class_option
@click.option("--shard", default=None, metavar="I/N",
              help="Process the I-th of N disjoint parts (I from 0), e.g. "
                   "--shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT.")
@click.option("--backend", type=click.Choice(["loky", "dask"]), default="loky",
              show_default=True,
              help="loky: processes on this machine; dask: an existing Dask cluster.")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Dask scheduler for --backend dask, e.g. tcp://host:8786.")
@click.option("--dry-run", is_flag=True,
              help="Count sources and outputs and estimate disk use; write nothing.")
@click.option("--overwrite", is_flag=True,
              help="Remake outputs that exist, and accept settings that differ from the ones "
                   "--out was built with.")
@click.option("--keep-going/--strict", "keep_going", default=True, show_default=True,
              help="On a bad source: record it in the failures file and go on, or stop.")
@click.option("--batch-size", type=click.IntRange(1, 4096), default=None, hidden=True,
              help="Sources per task (default: up to 32, smaller for small trees).")
def build_command(src, out, filters, recipes, recipes_only, jobs, quality, strengths, resize,
                  split, limit_per_class, shard, backend, scheduler, dry_run, overwrite,
                  keep_going, batch_size):
    """Build ImageNet-Instagram: every image under --src through every selected filter.

    Each source is decoded once and written once per filter (and strength), keeping its
    relative path, name and format, so torchvision.datasets.ImageFolder(<out>/<filter>/val)
    works. Re-running the same command resumes; bad images are listed in
    <out>/.instafilters/failures-*.tsv and make the exit code 1 at the end.

    \b
    Examples:
      instafilters build --src imagenet/ --out imagenet-ig/
      instafilters build --src imagenet/ --out ig-mini/ --split val --limit-per-class 10 \\
          --filters toaster,lordkelvin --strength 0.5,1 --resize 256
      instafilters build --src imagenet/ --out imagenet-ig/ --dry-run
      sbatch --array=0-15 --wrap 'instafilters build --src imagenet/ --out imagenet-ig/ \\
          --shard $SLURM_ARRAY_TASK_ID/16'
    """
    from .build import BuildConfig, build
    from .progress import human_bytes
    from .plan import Shard

    if scheduler and backend != "dask":
        raise click.UsageError("--scheduler goes with --backend dask")
    registry = registry_from(recipes, recipes_only)
    cfg = BuildConfig(src=Path(src), out=Path(out), registry=registry,
                      filters=registry.select(filters), strengths=strengths, quality=quality,
                      resize=resize, split=split, limit_per_class=limit_per_class,
                      shard=Shard.parse(shard), jobs=jobs, backend=backend, scheduler=scheduler,
                      dry_run=dry_run, overwrite=overwrite, strict=not keep_going,
                      batch_size=batch_size)

    def report(line):
        click.echo(line, err=True)

    def progress_bar(total):
        from tqdm import tqdm
        return tqdm(total=total, unit="img", desc="build", file=sys.stderr, dynamic_ncols=True,
                    smoothing=0.05)

    tty = sys.stderr.isatty() and not dry_run
    summary = build(cfg, report=report, progress_factory=progress_bar if tty else None)
    if dry_run:
        outputs = summary.sources * summary.outputs_per_source
        click.echo(f"dry run (nothing written): {summary.sources} source images "
                   f"({human_bytes(summary.source_bytes)}), {summary.others} non-image files "
                   f"left alone")
        click.echo(f"outputs: {outputs} = {summary.sources} x {len(cfg.filters)} filter(s) x "
                   f"{len(strengths)} strength(s); already done: {summary.existing_outputs}; "
                   f"to write: {outputs - summary.existing_outputs}")
        free = f", free on {cfg.out}: {human_bytes(summary.free_bytes)}" \
            if summary.free_bytes is not None else ""
        click.echo(f"estimated disk use: {human_bytes(summary.estimate_bytes)}{free}")
        if summary.free_bytes is not None and summary.estimate_bytes > summary.free_bytes:
            click.echo("warning: the estimate exceeds the free space", err=True)
        return
    click.echo(summary.line())
    if summary.failed:
        raise InstafiltersError(
            f"{summary.failed} of {summary.sources} sources failed; reasons in "
            f"{summary.failures_path}")
