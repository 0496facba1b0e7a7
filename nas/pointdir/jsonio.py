"""Crash-safe files: a reader sees the old file or the new one, never half of one.

The one atomic writer of the package: JSON files, checkpoints, job scripts;
and the one appender, for a file of lines that only grows (the learning
curve), whose readers skip a last line they cannot parse.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nas.numbers import json_int

#: The permissions of a file this package writes, before the umask: what ``open`` gives.
FILE_MODE = 0o666


def process_umask() -> int:
    """This process's umask, read without changing it where Linux says it
    (``/proc/self/status``); else set and restored at once (another thread could
    create a file in between, so that path is taken only where /proc cannot tell)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def atomic_write_bytes(
    path: str | Path, data: bytes, *, exclusive: bool = False, mode: int = FILE_MODE
) -> bool:
    """Write ``data`` to ``path`` via a temporary file, fsync and rename.

    With ``exclusive`` the file is only created if it does not exist yet (a hard
    link instead of a rename), so the first of several writers wins. ``mode``
    (``0o755`` for a script), less the umask, is set before the file appears
    under its name: the temporary file is created 0600, and teammates of a
    group-shared campaign (umask 002 or 027) could read no ``point.json``,
    checkpoint or operator request written this way.

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
        os.chmod(tmp, mode & ~process_umask())
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


def append_line(path: str | Path, line: bytes) -> None:
    """Append ``line`` (ending in a newline) to the regular file ``path`` and fsync it.

    An append never rewrites what is there: a file larger than any reader's
    bound keeps every line, and each call costs one line, not the file. A
    crash or a concurrent read can leave or show the last line half
    written, so readers of such a file skip a last line that does not parse;
    a last line a crash left without its newline is ended here first, so it
    stays one bad line instead of spoiling this one. Something other than a
    regular file at ``path`` (a symlink, a FIFO) is replaced by a file of
    just ``line``, as the atomic rewrite this replaces did: an append must
    neither write through a link nor block on a FIFO.
    """
    fd = _open_for_append(path)
    if fd is None:
        atomic_write_bytes(path, line)
        return
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line
        _write_all(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
    if size == 0:  # created here: make its name durable too
        _fsync_directory(Path(path).parent)


def _open_for_append(path: str | Path) -> int | None:
    """A descriptor appending to the regular file ``path`` (created if missing), or None
    when a symlink, FIFO or socket is there (``O_NONBLOCK``: a FIFO must not block)."""
    flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO):
            return None
        raise
    if stat.S_ISREG(os.fstat(fd).st_mode):
        return fd
    os.close(fd)
    return None


def _write_all(fd: int, data: bytes) -> None:
    """``os.write`` until every byte is written (it may write fewer, e.g. near a full disk)."""
    while data:
        data = data[os.write(fd, data) :]


def atomic_write_json(path: str | Path, document: Any, *, exclusive: bool = False) -> bool:
    """Write ``document`` as indented JSON (no NaN allowed) with :func:`atomic_write_bytes`."""
    text = json.dumps(document, indent=2, sort_keys=True, allow_nan=False) + "\n"
    return atomic_write_bytes(path, text.encode("utf-8"), exclusive=exclusive)


#: Largest JSON file a job may leave (bytes); ``SPLINENAS_MAX_JSON_BYTES`` overrides it.
MAX_JSON_BYTES = 1_000_000
_CONSTANT = re.compile(r"[:\[,]\s*(-?Infinity|NaN)\b")


def max_json_bytes() -> int:
    """The size limit for files jobs write, from the environment or :data:`MAX_JSON_BYTES`."""
    raw = os.environ.get("SPLINENAS_MAX_JSON_BYTES", "")
    return int(raw) if raw.isdigit() and int(raw) > 0 else MAX_JSON_BYTES


class NotRegularFile(ValueError):
    """A symlink, folder, FIFO or device where a job's file belongs.

    Apart from other unreadable files because what is there is the job's
    own doing (``ln -s best.json result.json``) and is there again next time;
    a reader that must tell this from a transient failure catches it.
    """


def open_regular(path: str | Path) -> int:
    """Open a file a job wrote, for reading, only if it is a regular file and no symlink.

    ``O_NONBLOCK`` keeps a FIFO from blocking the open; the type check
    refuses it (and a directory or device) before anything is read.

    Raises:
        NotRegularFile: a symlink or not a regular file; the message names the file.
        ValueError: unreadable (permissions, I/O); the message names the file.
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotRegularFile(
                f"{path}: is a symbolic link; only a regular file is read"
            ) from None
        raise ValueError(f"{path}: cannot read: {exc.strerror}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise NotRegularFile(f"{path}: is {file_kind(mode)}, not a regular file")
    return fd


def read_bounded(path: str | Path, max_bytes: int | None = None) -> bytes:
    """The bytes of a regular file of at most ``max_bytes`` (default :func:`max_json_bytes`).

    Raises:
        ValueError: see :func:`open_regular`, or the file is larger than the limit.
    """
    limit = max_json_bytes() if max_bytes is None else max_bytes
    fd = open_regular(path)
    try:
        size = os.fstat(fd).st_size
        data = b"" if size > limit else _read_up_to(fd, limit + 1)
    finally:
        os.close(fd)
    if size > limit or len(data) > limit:
        raise ValueError(f"{path}: is {max(size, len(data))} bytes, over the limit of {limit}")
    return data


def _read_up_to(fd: int, count: int) -> bytes:
    """Up to ``count`` bytes of ``fd``, fewer only at its end.

    One ``os.read`` may return fewer bytes than asked before the end of the
    file (a network file system answers in pieces): taken for the whole file,
    a valid file would look torn.
    """
    chunks: list[bytes] = []
    while count > 0:
        chunk = os.read(fd, count)
        if not chunk:
            break
        chunks.append(chunk)
        count -= len(chunk)
    return b"".join(chunks)


def parse_json(text: str | bytes, **options: Any) -> Any:
    """``json.loads(text, **options)`` for text a job, a person or another process wrote.

    Python's decoder recurses once per nested array or object: a line of a few
    thousand ``[`` raises :class:`RecursionError`, which is no ``ValueError``
    and would pass every handler of unreadable JSON. Here it is one.

    Raises:
        ValueError: not JSON (:class:`json.JSONDecodeError`, an ``options`` hook's
            refusal), or nested too deeply.
    """
    try:
        return json.loads(text, **options)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def read_json_object(
    path: str | Path,
    max_bytes: int | None = None,
    *,
    constants: bool = False,
    parse_int: Callable[[str], Any] = json_int,
) -> dict[str, Any]:
    """Read a JSON file whose top level must be an object, through :func:`read_bounded`.

    ``NaN``, ``Infinity`` and ``-Infinity`` are not JSON, but Python's
    ``json.dump`` writes them by default: with ``constants`` they are read as
    floats, for a file whose reader decides what a non-finite figure means
    (a result's secondary metric); without, they are refused. ``parse_int``
    reads each integer; the default refuses one no float holds, and a reader
    that can drop the key it sits in instead (a result's side figure) passes
    its own.

    Raises:
        NotRegularFile: a symlink, folder, FIFO or device (:func:`open_regular`).
        ValueError: too large, unreadable, not JSON (NaN without ``constants``,
            a key given twice), or not an object; the message names the file.
    """
    try:
        text = read_bounded(path, max_bytes).decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text") from None
    try:
        document = parse_json(
            text,
            parse_constant=float if constants else _reject_constant,
            parse_int=parse_int,
            object_pairs_hook=_reject_repeated_key,
        )
    except _ConstantError as exc:
        raise ValueError(f"{path}: not valid JSON: {exc} ({_where_constant(text)})") from None
    except ValueError as exc:  # JSONDecodeError, an integer too large (json_int), too deep
        raise ValueError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(document).__name__}")
    return document


class _ConstantError(ValueError):
    """NaN or Infinity in a file that must hold only JSON numbers."""


def _reject_constant(name: str) -> Any:
    raise _ConstantError(f"{name} is not a JSON number")


def _reject_repeated_key(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """The object of ``pairs``; a key given twice is refused: taking the last would guess."""
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise ValueError(f"key {key!r} given twice in one object")
        document[key] = value
    return document


def _where_constant(text: str) -> str:
    """``line L column C`` of the first NaN/Infinity value, for the message."""
    match = _CONSTANT.search(text)
    if match is None:
        return "position unknown"
    pos = match.start(1)
    line = text.count("\n", 0, pos) + 1
    return f"line {line} column {pos - (text.rfind(chr(10), 0, pos) + 1) + 1}"


def file_kind(mode: int) -> str:
    """What a ``stat`` mode says is there, as a message names it ("a FIFO", "a symbolic link")."""
    kinds = {stat.S_ISREG: "a regular file", stat.S_ISDIR: "a directory",
             stat.S_ISLNK: "a symbolic link", stat.S_ISFIFO: "a FIFO", stat.S_ISSOCK: "a socket",
             stat.S_ISCHR: "a character device", stat.S_ISBLK: "a block device"}  # fmt: skip
    return next((name for test, name in kinds.items() if test(mode)), "not a regular file")


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
