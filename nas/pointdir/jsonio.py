"""Crash-safe files: a reader sees the old file or the new one, never half of one.

The one atomic writer of the package: JSON files, checkpoints, job scripts.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def atomic_write_bytes(
    path: str | Path, data: bytes, *, exclusive: bool = False, mode: int | None = None
) -> bool:
    """Write ``data`` to ``path`` via a temporary file, fsync and rename.

    With ``exclusive`` the file is only created if it does not exist yet (a hard
    link instead of a rename), so the first of several writers wins. ``mode``
    (e.g. ``0o755`` for a script) is set before the file appears under its name.

    Returns:
        False when ``exclusive`` and the file already existed, else True.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        if exclusive:
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False
        else:
            os.replace(tmp, path)
        _fsync_directory(path.parent)
        return True
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def atomic_write_json(path: str | Path, document: Any, *, exclusive: bool = False) -> bool:
    """Write ``document`` as indented JSON (no NaN allowed) with :func:`atomic_write_bytes`."""
    text = json.dumps(document, indent=2, sort_keys=True, allow_nan=False) + "\n"
    return atomic_write_bytes(path, text.encode("utf-8"), exclusive=exclusive)


def read_json_object(path: str | Path) -> dict[str, Any]:
    """Read a JSON file whose top level must be an object.

    Raises:
        ValueError: unreadable, not JSON, or not an object; the message names the file.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text") from None
    try:
        document = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(document).__name__}")
    return document


def _reject_constant(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not allowed", name, 0)


def _fsync_directory(directory: Path) -> None:
    """Make a rename durable; some file systems refuse to open directories, which is harmless."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
