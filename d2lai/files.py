"""Output files: check a path before the work that will write it, take it for one run alone,
write it whole (JSON strictly)."""

from __future__ import annotations

import json
import math
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path

__all__ = ["check_output_path", "claim", "json_safe", "run_folder", "write_json", "write_whole"]


def check_output_path(path: str | os.PathLike, what: str, folder: bool = False) -> Path:
    """Fail now, not after training, if `path` cannot be written: a file (or a folder if `folder`).

    The first existing folder on the way must be a writable folder, and the path itself must not
    be a folder where a file is wanted (or a file where a folder is wanted).
    """
    path = Path(path).expanduser()
    if path.exists():
        if folder and not path.is_dir():
            raise NotADirectoryError(f"{what} {path} is a file, not a folder")
        if not folder and path.is_dir():
            raise IsADirectoryError(f"{what} {path} is a folder; give a file name")
    existing = path if folder and path.is_dir() else path.parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(f"cannot write {what} {path}: {existing} is a file, not a folder")
    target = path if path.exists() else existing
    if not os.access(target, os.W_OK):
        raise PermissionError(f"cannot write {what} {path}: {target} is not writable")
    return path


def json_safe(value):
    """`value` with NaN and infinities as None, so that it is strict JSON (as JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def write_whole(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Write `path` by `write(tmp)` to a temporary file beside it, then rename that into place:
    a crash while writing leaves the file as it was, never half written. The temporary name is
    this write's own (two writers never share one), and it is removed if the write fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def claim(path: str | os.PathLike, what: str, by: str, folder: bool = False):
    """Take `path` (a file, or a `folder`) for this run alone until the returned lock's
    `release()`: a path another live run holds, in this process or another, is refused.

    The lock is a file beside `path` (`.NAME.lock`; `.lock` inside a folder, made if need
    be), locked by the operating system, so a run that dies, even killed, frees it.
    """
    from filelock import FileLock, Timeout

    path = Path(path)
    lockfile = path / ".lock" if folder else path.with_name(f".{path.name}.lock")
    lockfile.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(lockfile), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise RuntimeError(f"{what} {path} is in use by another {by}, running now (it holds "
                           f"{lockfile}): wait until it ends, or choose another path") from None
    return lock


def write_json(path: str | os.PathLike, value) -> Path:
    """Write strict JSON (NaN as null), whole or not at all."""
    text = json.dumps(json_safe(value), indent=2, allow_nan=False) + "\n"
    return write_whole(path, lambda tmp: tmp.write_text(text))


def run_folder(name: str) -> str:
    """A run's name as a folder name (characters no file system takes become _)."""
    folder = re.sub(r'[<>:"/\\|?*\x00-\x1f]', "_", name)
    return "_" if folder in (".", "..") else folder
