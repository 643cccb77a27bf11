"""The `instafilters` command. The only place where errors become exit codes.

Subcommands load lazily (click's LazyGroup pattern), so `instafilters list` never imports
torch, dask or the dataset machinery.
"""
from __future__ import annotations

import errno
import importlib
import os
import signal
import sys

import click

from . import __version__
from .errors import InstafiltersError
from .files import one_line

# name -> (module:attribute, one-line help shown by `instafilters --help` without importing)
LAZY_COMMANDS = {
    "list": ("instafilters.commands:list_command", "List filters, aliases and fidelity."),
    "apply": ("instafilters.commands:apply_command", "Apply one filter to one image."),
    "preview": ("instafilters.commands:preview_command",
                "Contact sheet of an image under every filter."),
    "fit": ("instafilters.fit.command:fit_command", "Fit a recipe to before/after image pairs."),
    "fidelity": ("instafilters.calibration:fidelity_command",
                 "CIEDE2000 of the calibrated filters against real Instagram output."),
    "build": ("instafilters.dataset.command:build_command",
              "Build ImageNet-Instagram from an image tree."),
    "eval": ("instafilters.evaluate.command:eval_command",
             "Per-filter Top-1/Top-5 robustness report for a classifier."),
}


class LazyGroup(click.Group):
    """Imports a subcommand's module only when it is called or listed in --help."""

    def list_commands(self, ctx):
        return list(LAZY_COMMANDS)

    def get_command(self, ctx, name):
        target = LAZY_COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target[0].split(":")
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx, formatter):
        with formatter.section("Commands"):
            formatter.write_dl([(name, short) for name, (_, short) in LAZY_COMMANDS.items()])

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except InstafiltersError as e:
            raise click.ClickException(one_line(str(e))) from None
        except OSError as e:
            if e.filename is not None or e.errno not in _STREAM_ERRNOS:
                raise  # a file's error escaping an InstafiltersError is a bug: show it
            # stdout is a full disk (> /dev/full) or a dead terminal
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no 2nd error
            raise click.ClickException(f"cannot write the output: {e.strerror}") from None
        except Terminated:
            click.echo("Terminated.", err=True)
            sys.exit(128 + signal.SIGTERM)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            sys.exit(130)


_STREAM_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EIO}  # EPIPE: click exits quietly


class Terminated(KeyboardInterrupt):
    """SIGTERM (Slurm preemption, `kill`, a container stop) stops a command as Ctrl-C does:
    the same cleanup (workers stopped, markers released, no warnings from loky about
    leaked folders), one line, exit 143. A second SIGTERM kills at once."""


def _on_sigterm(signum, frame):
    signal.signal(signum, signal.SIG_DFL)
    if os.getpid() != _MAIN_PID:  # a forked child (a DataLoader worker): die as before
        os.kill(os.getpid(), signum)
        return
    raise Terminated()


_MAIN_PID = os.getpid()


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"],
                                              "max_content_width": 100})
@click.version_option(__version__, prog_name="instafilters")
def cli():
    """Instagram filters for robustness research: regenerate ImageNet-Instagram and measure
    how much a classifier loses under each filter.

    \b
    Examples:
      instafilters list
      instafilters apply -f toaster photo.jpg toaster.jpg
      instafilters preview photo.jpg -o sheet.jpg
      instafilters fit --before normal.jpg --after filtered.jpg --name myfilter -o my.yaml
      instafilters fidelity
      instafilters build --src imagenet/ --out imagenet-ig/ --split val
      instafilters eval resnet50 --data imagenet-ig/ --clean imagenet/
      instafilters eval resnet50 efficientnet_lite0 --clean imagenet/   # no build

    Run `instafilters COMMAND --help` for each command's options and examples.
    """


def main(argv=None):
    global _MAIN_PID
    _MAIN_PID = os.getpid()
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)
    return cli.main(args=argv, prog_name="instafilters")


if __name__ == "__main__":
    main()
