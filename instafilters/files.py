"""Reading the files a user hands us: regular files only, bounded size, plain YAML.

Every reader of a user's file (images in decode, recipe files) opens it here, so a FIFO
given as a photo or a recipe is refused at once instead of hanging on its first read, and a
device is never opened at all. The path is stat'ed first; the file is then opened
non-blocking and checked again on the descriptor, so a path swapped for a FIFO between the
two is still refused without blocking. Text is bounded in size and must be UTF-8; YAML is
read without anchors and aliases or duplicate keys (a "billion laughs" file expands 10 levels of aliases
into gigabytes) and with bounded nesting (100,000 '[' overflowed the composer's stack).
"""
from __future__ import annotations

import errno
import os
import re
import stat
import tempfile
from pathlib import Path

import yaml

from .errors import InstafiltersError
from .paths import escape_name

_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device",
          stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a folder"}


def _check(st: os.stat_result, path, max_bytes: int | None) -> None:
    if not stat.S_ISREG(st.st_mode):
        kind = _KINDS.get(stat.S_IFMT(st.st_mode), "not a regular file")
        raise OSError(errno.EINVAL, f"{kind}, not a regular file", str(path))
    if max_bytes is not None and st.st_size > max_bytes:
        raise OSError(errno.EFBIG, f"{st.st_size} bytes, over the limit of {max_bytes}",
                      str(path))


def open_regular(path, max_bytes: int | None = None):
    """A binary file object for `path`, or OSError (its strerror says why: missing, no
    permission, a symlink loop, a FIFO or other non-regular file, over `max_bytes`)."""
    _check(os.stat(path), path, max_bytes)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        _check(os.fstat(fd), path, max_bytes)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def display(path) -> str:
    """A path for a one-line message: as it is when it is printable UTF-8; otherwise quoted
    and escaped as the failures file writes names (paths.escape_name: undecodable bytes and
    control characters as \\xNN, a newline in a name must not make a second line)."""
    text = os.fsdecode(path)
    if text.isprintable():
        return text
    return "'" + escape_name(text) + "'"


def one_line(text: str) -> str:
    """A message made one line: each character that is not printable (a newline or tab in a
    path, an undecodable byte) written as paths.escape_name writes it (\\xNN). cli.py applies
    it to every error, so no path inside a message can split it or forge a second line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else escape_name(c) for c in text)


def why(e: OSError) -> str:
    """'no such file or directory', 'a FIFO, not a regular file', ...: for one-line errors."""
    text = e.strerror or str(e)
    return text[:1].lower() + text[1:]


def read_text(path, max_bytes: int) -> str:
    """The UTF-8 text of a regular file of at most `max_bytes`, or OSError saying why."""
    with open_regular(path, max_bytes) as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:  # grew since the stat
        raise OSError(errno.EFBIG, f"over the limit of {max_bytes} bytes", str(path))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise OSError(errno.EILSEQ, f"not UTF-8 text (byte 0x{data[e.start]:02x} at offset "
                      f"{e.start})", str(path)) from None


def check_writable(path, what: str = "") -> None:
    """Fail now, naming `path`, if a file cannot be written there (a fit or an evaluation takes a while):
    its nearest existing folder must be a folder we can create files in (missing folders
    below it are created when writing). `what` names the option, e.g. '--results-file '."""
    path = Path(path)
    folder = nearest_existing(path.parent)
    if not folder.is_dir():
        raise InstafiltersError(f"{what}{path}: cannot write here: {folder} is not a folder")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise InstafiltersError(f"{what}{path}: cannot write here: {e.strerror or e}"
                                ) from None


def nearest_existing(path) -> Path:
    """`path` or its nearest ancestor that exists (what a write there would create folders
    under): where check_writable tries a file and build --dry-run asks for free space."""
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


MAX_YAML_DEPTH = 32


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml: about 3x faster
    """The safe loader, reading `1e-3` and `2E5` as numbers as YAML 1.2 and JSON do (YAML
    1.1 needs a '.', so `amount: 1e-1` was the string '1e-1', refused as not a number)."""


_Loader.add_implicit_resolver("tag:yaml.org,2002:float",
                              re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
                              list("-+0123456789"))
_LOADER = _Loader


def load_yaml(text: str):
    """yaml.safe_load, after a pass over the parser's events (cheap: no objects are built)
    that refuses anchors, aliases, nesting deeper than MAX_YAML_DEPTH and a key given twice
    in one mapping (PyYAML silently keeps the last: `{amount: 1.1, amount: 1.2}`); raises
    yaml.YAMLError with the line."""
    frames: list = []  # per open collection: a mapping's keys seen so far, or None
    key_next: list = []  # per open mapping: is its next node a key?
    for event in yaml.parse(text, Loader=_LOADER):
        problem = None
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            problem = "anchors and aliases (& and *) are not allowed"
        elif isinstance(event, yaml.NodeEvent) and frames and frames[-1] is not None:
            if key_next[-1] and isinstance(event, yaml.ScalarEvent):
                if event.value in frames[-1]:
                    problem = f"duplicate key {event.value!r} (YAML would keep the last one)"
                frames[-1].add(event.value)
            key_next[-1] = not key_next[-1]
        if isinstance(event, yaml.CollectionStartEvent):
            mapping = isinstance(event, yaml.MappingStartEvent)
            frames.append(set() if mapping else None)
            key_next.append(True)
            if len(frames) > MAX_YAML_DEPTH:
                problem = f"nested deeper than {MAX_YAML_DEPTH} levels"
        elif isinstance(event, yaml.CollectionEndEvent):
            frames.pop()
            key_next.pop()
        if problem:
            raise yaml.MarkedYAMLError(None, None, problem, event.start_mark)
    return yaml.load(text, Loader=_LOADER)  # noqa: S506 - a safe loader
