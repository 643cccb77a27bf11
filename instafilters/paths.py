"""Paths and names the tool derives from user input or from the file system.

`inside` is the one check that a path built from an option (--split), a filter or strength
folder name, or a source's relative path stays inside its root; `escape_name` writes any
file name (any bytes, newlines, tabs) as one unambiguous line of text.
"""
from __future__ import annotations

import os
import posixpath

from .errors import InstafiltersError


class PathEscapeError(InstafiltersError):
    """A name derived from user input would lead outside the folder it belongs in."""


def clean_rel(rel: str, what: str = "path") -> str:
    """`rel` normalised ('a/./b' -> 'a/b', '.' -> ''); refuses an absolute path, a '..'
    part, a backslash or a NUL, anything that could resolve outside the root it is joined to."""
    text = str(rel)
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if (text.startswith("/") or os.path.isabs(text) or "\\" in text or "\0" in text
            or ".." in parts):
        raise PathEscapeError(f"{what} {text!r} must be a path inside its folder "
                              f"(relative, without '..')")
    return posixpath.join(*parts) if parts else ""


def split_list(text, what: str = "--split") -> list[str]:
    """A comma list of folder names (--split NAME[,NAME]) -> each after `clean_rel` ('' for
    '.', the whole tree); blanks between commas are skipped. The one parser of the CLI's
    option, the build's walk and eval's split."""
    return [clean_rel(part.strip(), what) for part in str(text).split(",") if part.strip()]


def inside(root, rel: str, what: str = "path") -> str:
    """`root`/`rel` as a string, after `clean_rel`: never outside `root` by its name."""
    rel = clean_rel(rel, what)
    return os.path.join(os.fspath(root), rel) if rel else os.fspath(root)


def strength_folder(s: float) -> str:
    """The folder name of a strength when a build writes several (`<filter>/<name>/...`)."""
    return f"{s:g}"


def escape_name(text: str) -> str:
    """A file name (str with surrogate escapes for undecodable bytes) as printable UTF-8 on
    one line: a backslash becomes `\\\\`, undecodable bytes and control characters (tab,
    newline, ...) `\\xNN`; every other character as is. Reversible, so never ambiguous."""
    raw = os.fsencode(text) if isinstance(text, str) else bytes(text)
    raw = raw.replace(b"\\", b"\\\\")
    out = raw.decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() or c == " " else
                   "".join(f"\\x{b:02x}" for b in c.encode("utf-8")) for c in out)
