"""Opening the files a user hands us: regular files only, of a bounded size.

Every reader of a user's file (images in decode, recipe files) opens it here, so a FIFO
given as a photo or a recipe is refused at once instead of hanging on its first read, and a
device is never opened at all. The path is stat'ed first; the file is then opened
non-blocking and checked again on the descriptor, so a path swapped for a FIFO between the
two is still refused without blocking.
"""
from __future__ import annotations

import errno
import os
import stat

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


def why(e: OSError) -> str:
    """'no such file or directory', 'a FIFO, not a regular file', ...: for one-line errors."""
    text = e.strerror or str(e)
    return text[:1].lower() + text[1:]
