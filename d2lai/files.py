"""Output files: check a path before the work that will write it, and write JSON strictly."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path

__all__ = ["check_output_path", "json_safe", "write_json", "write_whole"]


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
    a crash while writing leaves the file as it was, never half written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)
    return path


def write_json(path: str | os.PathLike, value) -> Path:
    """Write strict JSON (NaN as null), whole or not at all."""
    text = json.dumps(json_safe(value), indent=2, allow_nan=False) + "\n"
    return write_whole(path, lambda tmp: tmp.write_text(text))
