"""Exceptions of instafilters. No click here: cli.py turns these into exit codes."""
from __future__ import annotations

from contextlib import contextmanager


class InstafiltersError(Exception):
    """Base class: every error a user can cause; its message is one line for the CLI."""


class RecipeError(InstafiltersError):
    """A recipe file is wrong; the message names the file, filter, op index and field."""

    def __init__(self, message: str, *, file=None, filter=None, op=None, field=None):
        self.file, self.filter, self.op, self.field = file, filter, op, field
        where = [str(file) if file is not None else "<recipes>"]
        if filter is not None:
            where.append(f"filter {filter!r}")
        if op is not None:
            where.append(f"op {op}")
        if field is not None:
            where.append(f"field {field!r}")
        super().__init__(", ".join(where) + ": " + message)


class UnknownFilterError(InstafiltersError, KeyError):
    """A filter name or alias that no loaded recipe defines."""

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class ImageError(InstafiltersError):
    """An image that cannot be read or written; the message names the file."""


class OutputError(InstafiltersError):
    """--out cannot be written (disk full, read-only, permissions): the run must stop."""


@contextmanager
def writing(path, what: str = "write"):
    """Turn an OSError while writing `path` into the one-line OutputError that stops a run."""
    try:
        yield
    except OSError as e:
        raise OutputError(f"cannot {what} {path}: {e.strerror or e}") from None
