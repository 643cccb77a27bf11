"""What a build records under `<out>/.instafilters/`.

    run.json                      the settings every output under <out> was made with: the
                                  options that change pixels, and a hash of each filter's recipe
    manifest-<run>.jsonl          one line per source of that run: outputs and status
    failures-<run>.tsv            source path <TAB> reason, for every source that failed
    build-<run>.log               the progress lines and summary of that run
    lock, running-<tag>           who is building right now (lock.py)

Each run (each shard of a Slurm array) writes its own files, so concurrent runs on one shared
--out never interleave lines. run.json is created once, atomically (write a temporary, then
link), under the gate lock; a run whose settings differ refuses unless --overwrite.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import socket
import tempfile
import time
from pathlib import Path

from .. import __version__
from ..errors import InstafiltersError
from ..io import TEMP_PREFIX
from ..paths import escape_name
from ..tree import META_DIR

RUN_FILE = "run.json"
MAX_RECORD_BYTES = 1 << 20  # a record is a few KB; never read a huge file into memory
FORMAT = 1


def recipe_hash(recipe) -> str:
    """Hash of what decides a filter's pixels (its ops), not its name, aliases or notes."""
    ops = [[op.name, op.kind, op.params] for op in recipe.ops]
    text = json.dumps(ops, sort_keys=True, default=_jsonable, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def recipe_hash_all(hashes: dict) -> str:
    text = json.dumps(sorted(hashes.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _jsonable(x):
    if isinstance(x, (tuple, list, set, frozenset)):
        return list(x)
    if hasattr(x, "items"):
        return dict(x)
    if hasattr(x, "tolist"):
        return x.tolist()
    return repr(x)


def library_versions() -> dict:
    import cv2
    import numpy
    import PIL
    return {"pillow": PIL.__version__, "opencv": cv2.__version__, "numpy": numpy.__version__}


def make_record(options: dict, filter_hashes: dict, now: float | None = None) -> dict:
    """`filters` maps name -> {recipe: hash, valid_since: epoch seconds}: an output of that
    filter older than valid_since was made with other settings and is remade, never kept."""
    now = time.time() if now is None else now
    return {"format": FORMAT, "instafilters": __version__, "options": options,
            "filters": {n: {"recipe": h, "valid_since": now} for n, h in filter_hashes.items()},
            "libraries": library_versions(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))}


def filesystem_now(directory) -> float:
    """The clock of the filesystem holding --out, read from a file written just now.

    valid_since is compared with output mtimes, which the file server sets; taking it from
    the same clock makes the comparison immune to skew between this machine and the server."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=".stamp", dir=directory)
    try:
        os.write(fd, b"now")
        return os.fstat(fd).st_mtime
    finally:
        os.close(fd)
        os.unlink(tmp)


def meta_dir(out) -> Path:
    return Path(out) / META_DIR


def read_record(out) -> dict | None:
    path = meta_dir(out) / RUN_FILE
    try:
        if path.stat().st_size > MAX_RECORD_BYTES:
            raise ValueError(f"over {MAX_RECORD_BYTES} bytes")
        record = json.loads(path.read_text(encoding="utf-8"))
        _check_shape(record)
        return record
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise InstafiltersError(f"{path}: unreadable build record ({e}); move it away to "
                                f"start a new record, or use a new --out") from None


def _check_shape(record) -> None:
    """What the build reads from run.json, checked once: anything else is ValueError."""
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    if not isinstance(record.get("options", {}), dict):
        raise ValueError("'options' is not an object")
    filters = record.get("filters")
    if not isinstance(filters, dict):
        raise ValueError("'filters' is not an object")
    for name, entry in filters.items():
        since = entry.get("valid_since") if isinstance(entry, dict) else None
        if (not isinstance(since, (int, float)) or isinstance(since, bool)
                or not math.isfinite(since) or not isinstance(entry.get("recipe"), str)):
            raise ValueError(f"filter {name!r}: expected {{recipe: hash, valid_since: seconds}}")


def differences(old: dict, new: dict) -> list[str]:
    """Human-readable reasons why outputs made under `old` may not be mixed with `new`."""
    found = []
    if old.get("instafilters") != new["instafilters"]:
        found.append(f"instafilters {old.get('instafilters')} -> {new['instafilters']}")
    old_opts = old.get("options", {})
    for key, value in new["options"].items():
        if old_opts.get(key) != value:
            found.append(f"--{key.replace('_', '-')} {_show(old_opts.get(key))} -> {_show(value)}")
    for name, entry in new["filters"].items():
        was = old.get("filters", {}).get(name)
        if was is not None and was.get("recipe") != entry["recipe"]:
            found.append(f"recipe of {name!r} changed")
    return found


def _show(v):
    if isinstance(v, list):
        return ",".join(f"{x:g}" if isinstance(x, float) else str(x) for x in v)
    return "none" if v is None else str(v)


def check_record(out, record: dict, overwrite: bool, old: dict | None) -> tuple[dict, list[str]]:
    """The record to keep after this run, and the differences found (already allowed by
    --overwrite), given `old`, run.json as read_record read it (the caller keeps it too).
    Refuses with a clear message when settings differ without --overwrite."""
    if old is None:
        return _fresh_dirs_valid(out, record, record["filters"]), []
    diff = differences(old, record)
    if diff and not overwrite:
        raise InstafiltersError(
            f"{out} was built with other settings ({'; '.join(diff)}); outputs must not be "
            f"mixed: use a new --out, or --overwrite to rebuild the selected filters with the "
            f"new settings")
    merged = dict(record)
    same_options = (old.get("options") == record["options"]
                    and old.get("instafilters") == record["instafilters"])
    if same_options:
        # filters built before and not selected now stay valid; a selected filter whose recipe
        # is unchanged keeps its valid_since, so its finished outputs are kept on resume
        filters = dict(old.get("filters", {}))
        for name, entry in record["filters"].items():
            was = filters.get(name)
            if was is None or was.get("recipe") != entry["recipe"]:
                filters[name] = entry
        merged["filters"] = filters
        merged["created"] = old.get("created", record["created"])
    # else (only reachable with --overwrite): the record restarts with the selected filters,
    # all valid from now; outputs of other settings are older and get remade, never kept
    fresh = {n: e for n, e in merged["filters"].items() if e is record["filters"].get(n)}
    return _fresh_dirs_valid(out, merged, fresh), diff


def _fresh_dirs_valid(out, record: dict, new_entries: dict) -> dict:
    """A filter with no folder under --out yet has nothing stale: its valid_since is 0, so
    resume never depends on the clocks of this machine and the file server agreeing."""
    filters = dict(record["filters"])
    for name, entry in new_entries.items():
        if not (Path(out) / name).exists():
            filters[name] = {**entry, "valid_since": 0.0}
    return {**record, "filters": filters}


def write_record(out, record: dict, old_exists: bool) -> None:
    """Create run.json atomically (write a temporary, then link/replace); a concurrent shard
    that created it first with the same settings wins harmlessly."""
    path = meta_dir(out) / RUN_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (json.dumps(record, indent=1, sort_keys=True) + "\n").encode()
    tmp = path.with_name(f"{TEMP_PREFIX}{os.getpid()}-{RUN_FILE}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    try:
        if old_exists:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass  # another shard was first; check_record already compared settings
            finally:
                os.unlink(tmp)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise


def run_id(shard) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    part = f"-{shard.tag}" if shard.count > 1 else ""
    host = socket.gethostname().split(".")[0] or "host"
    return f"{stamp}{part}-{host}-{os.getpid()}"


class RunFiles:
    """The manifest, failures and log files of one run, appended line by line and flushed
    after every line, so a kill -9 loses at most the line being written (JSON Lines: readers
    should skip a last line that does not parse). A source's line is written when its batch
    comes back from the worker: sources of a batch still in flight at the kill have none
    (their finished outputs are found, by stat, on the next run). File names of any bytes
    are kept exactly: JSON escapes them (undecodable bytes as \\udcXX, Python's surrogateescape); the TSV and
    the log use paths.escape_name (`\\xNN`, `\\\\`), so a tab or newline cannot forge a row."""

    def __init__(self, out, rid: str):
        base = meta_dir(out)
        base.mkdir(parents=True, exist_ok=True)
        self.manifest_path = base / f"manifest-{rid}.jsonl"
        self.failures_path = base / f"failures-{rid}.tsv"
        self.log_path = base / f"build-{rid}.log"
        self._manifest = open(self.manifest_path, "a", encoding="ascii")
        self._log = open(self.log_path, "a", encoding="utf-8", errors="backslashreplace")
        self._failures = None

    def header(self, info: dict):
        """First line of the manifest: run id, options, and the layout that names every
        output of a source (`<out>/<key>/<src>` for each key)."""
        self._write(self._manifest, json.dumps(info, ensure_ascii=True, default=str))

    def source(self, rel, status, outputs: int, written: int, reason=None):
        """`outputs`: how many of the header's keys exist for this source after the run
        (all of them unless it failed), `written`: how many this run made."""
        line = {"src": rel, "status": status, "outputs": outputs, "written": written}
        if reason:
            line["reason"] = reason
        if status == "failed":
            if self._failures is None:
                self._failures = open(self.failures_path, "a", encoding="utf-8")
                self._write(self._failures, "source\treason")
            self._write(self._failures, f"{escape_name(rel)}\t{escape_name(reason or '')}")
        self._write(self._manifest, json.dumps(line, ensure_ascii=True))

    def log(self, line: str):
        self._write(self._log, line)

    @staticmethod
    def _write(f, line: str):
        f.write(line + "\n")
        f.flush()

    def close(self):
        for f in (self._manifest, self._failures, self._log):
            if f is not None:
                try:
                    f.close()
                except OSError:
                    pass
