"""Plumbing shared by the sub-command modules: common options, error reporting, JSON out."""

from __future__ import annotations

import argparse
import errno
import functools
import json
import math
import sys
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from types import GeneratorType
from typing import TYPE_CHECKING, Any, TextIO

from nas.commands.main import EXIT_FAILURE as EXIT_FAILURE  # re-exported for the commands
from nas.commands.main import EXIT_OK as EXIT_OK
from nas.commands.main import EXIT_USAGE as EXIT_USAGE
from nas.commands.main import error_document
from nas.errors import UserError
from nas.names import printable, shown
from nas.numbers import plain_integer, plain_number, plural  # noqa: F401 - plural: re-exported
from nas.search.space import params_text as params_text  # re-exported for the commands

if TYPE_CHECKING:
    from nas.record.state import Point


class UsageError(Exception):
    """A command line that parses but makes no sense (exit code 2)."""


Handler = Callable[[argparse.Namespace], int]


def json_option() -> argparse.ArgumentParser:
    """Parent parser for ``--json``."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    return parent


def path_arg(text: str) -> Path:
    """A path given on the command line; an empty one is a usage error, not the current folder."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a path, got an empty string")
    return Path(text)


def number_arg(text: str) -> float:
    """A finite number given on the command line, in plain ASCII notation only
    (:func:`nas.numbers.plain_number`); other text is a usage error that names it.

    Every number a command takes (a measurement, a box bound) must be finite: ``nan``,
    ``inf`` or ``1e999`` (read as infinity) is refused quoting what was typed."""
    if not plain_number(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a plain number: ASCII digits with an optional sign, '.' "
            "and exponent (e.g. 71.5 or 1e-3)"
        )
    value = float(text)
    if not math.isfinite(value):
        beyond = (
            ""
            if text.strip().lower().lstrip("+-") in ("nan", "inf", "infinity")
            else (f", beyond the largest number a float holds (±{sys.float_info.max:.4g})")
        )
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number{beyond}")
    return value


def whole_number_arg(text: str) -> int:
    """A whole number given on the command line (a point id, a count), in ASCII digits only
    (:func:`nas.numbers.plain_integer`): ``show ３`` must not show point 3."""
    if not plain_integer(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a whole number in ASCII digits (e.g. 12)"
        )
    return int(text)


#: The longest wait of a command that repeats (``run --poll``, ``controller --poll``,
#: ``report --watch``): a controller that looks less often than daily leaves finished
#: trainings unrecorded for days, a page that is rewritten less often is stale as long, and
#: a wait of 1e300 s overflows the timer.
MAX_WAIT_SECONDS = 86400.0


def seconds_arg(*, zero: bool) -> Callable[[str], float]:
    """An argparse type for a wait (``--poll``, ``--watch``): finite seconds up to a day.

    ``zero``: ``run --poll 0`` cycles without waiting (tests, a search by hand);
    a keep-alive job or a refreshing page needs a positive wait. NaN compares
    false with every bound, so it is refused by name.
    """

    def seconds(text: str) -> float:  # argparse names the type by __name__
        value = float(text)
        low_ok = value >= 0 if zero else value > 0
        if not (low_ok and value <= MAX_WAIT_SECONDS):
            least = "at least 0" if zero else "more than 0"
            raise argparse.ArgumentTypeError(
                f"expected seconds {least} and at most {MAX_WAIT_SECONDS:g} (a day), got {text}"
            )
        return value

    return seconds


def state_option() -> argparse.ArgumentParser:
    """Parent parser for the required ``--state PATH``."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--state", required=True, type=path_arg, metavar="PATH", help="state file")
    return parent


#: Seconds a command that changes the state (``record``, ``add``, ``import``, ``propose``)
#: waits for the lock another short command holds: several trainings that end together
#: each calling ``record`` queue up instead of failing. A controller holds it for its
#: whole run: the command then fails after this wait, naming it.
LOCK_WAIT_SECONDS = 10.0

#: What an operating-system error means for a path the user gave, in words.
_OS_REASONS = {
    errno.ENOENT: "no such file or folder",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "is a folder, not a file",
    errno.EEXIST: "exists already (and is not a folder)",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.ENAMETOOLONG: "file name too long",
}


def os_error_line(exc: OSError) -> str:
    """One line for a failed file operation: the path it concerned and why, in words."""
    reason = _OS_REASONS.get(exc.errno or -1) or exc.strerror or str(exc).splitlines()[0]
    paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
    return f"{' -> '.join(paths)}: {reason}" if paths else reason


#: Packages of the optional extras, with the extra that installs each. A login
#: node's controller-only install has none of them (`pip install splinenas`).
OPTIONAL_MODULES = {
    "torch": "train",
    "torchvision": "train",
    "tensorboardX": "tensorboard",
    "sklearn": "demo",
}


def missing_module_line(exc: ModuleNotFoundError) -> str:
    """Which extra brings the missing package, for a command that needs it."""
    extra = OPTIONAL_MODULES[str(exc.name)]
    return (
        f"this needs {exc.name}, which is not installed in this environment: "
        f"pip install 'splinenas[{extra}]' (or run it where the site's PyTorch is)"
        if extra == "train"
        else f"this needs {exc.name}, which is not installed: pip install 'splinenas[{extra}]'"
    )


def reported(handler: Handler) -> Handler:
    """Turn a handler's user errors into one line on stderr and exit code 1, its usage
    errors into one and exit code 2 (:func:`failure`: under ``--json`` a document too).

    A user error is any :class:`nas.errors.UserError` (each layer's error
    types derive from it), a failed file operation (a missing folder, a
    read-only file system: the line names the path) or a missing optional
    package (the line names the extra that installs it). Anything else is a
    bug and keeps its traceback.
    """

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except UsageError as exc:
            return failure(args, str(exc), EXIT_USAGE)
        except BrokenPipeError:
            raise
        except OSError as exc:
            return failure(args, os_error_line(exc))
        except ModuleNotFoundError as exc:
            if exc.name not in OPTIONAL_MODULES:
                raise
            return failure(args, missing_module_line(exc))
        except UserError as exc:
            return failure(args, str(exc))

    return run


def failure(args: argparse.Namespace, message: str, code: int = EXIT_FAILURE) -> int:
    """A failed command, said once: ``splinenas COMMAND: error: MESSAGE`` on stderr and,
    with ``--json``, :func:`error_document` on stdout, so a script that reads the one
    document ``--json`` promises reads why instead of nothing; returns ``code``."""
    print(f"splinenas {args.command}: error: {message}", file=sys.stderr)
    if getattr(args, "json", False):
        emit_json(error_document(message, code))
    return code


def writable_path(path: Path, option: str, *, folder: bool = False, create: bool = False) -> Path:
    """Check, before any work, that ``path`` can be written: a usage error naming ``option``.

    ``folder``: ``path`` is a folder to write into, else a file. ``create``:
    missing folders on the way are created later, else they must exist.
    A control character (a newline, a tab) is refused: the path names the
    run folder, whose paths go into job scripts and scheduler lines.
    """
    control = next((c for c in str(path) if unicodedata.category(c) == "Cc"), None)
    if control is not None:
        raise UsageError(
            f"{option} {shown(path)}: contains the control character {control!r}; "
            "job scripts cannot name such a path"
        )
    if path.is_dir() and not folder:
        raise UsageError(f"{option} {path}: is a folder; give a file name")
    if path.exists() and not path.is_dir() and folder:
        raise UsageError(f"{option} {path}: is a file, not a folder")
    parent = path if folder else path.parent
    ancestor = next(p for p in (parent, *parent.parents) if p.exists() or p == Path(p.anchor))
    if not ancestor.is_dir():
        raise UsageError(f"{option} {path}: {ancestor} is a file, not a folder")
    if ancestor != parent and not create:
        raise UsageError(f"{option} {path}: the folder {parent} does not exist")
    return path


#: Characters of JSON text gathered before one write: a document of 10,000 rows is a few
#: writes, not one per row (stdout is unbuffered where ``PYTHONUNBUFFERED`` is set).
_WRITE_BLOCK = 1 << 20


class JSONText(str):
    """Text already encoded as one JSON value: :func:`write_json` writes it as it is."""


def emit_json(document: Any) -> None:
    """Print one JSON document on stdout (JSON has no NaN: callers map it to null)."""
    write_json(document, sys.stdout)


def write_json(document: Any, handle: TextIO) -> None:
    """``document`` as JSON: an object one key per line, a list one item per line.

    Every piece comes from json's C encoder, values nested deeper are compact on
    their line: json's indenting encoder is pure Python, about three times
    slower (``status --json`` at 10,000 points), and writes each token on its
    own. A list value may be any iterable (a generator that builds each row as
    it is written: ``export --json``), so a bulk document is never whole in memory.
    """
    block: list[str] = []
    size = 0
    for piece in _json_pieces(document):
        block.append(piece)
        size += len(piece)
        if size >= _WRITE_BLOCK:
            handle.write("".join(block))
            block, size = [], 0
    block.append("\n")
    handle.write("".join(block))


def _json_pieces(document: Any) -> Iterator[str]:
    if isinstance(document, Mapping):
        yield "{"
        for index, (key, value) in enumerate(document.items()):
            name = json.dumps(key) if isinstance(key, str) else json.dumps({key: 0})[1:-4]
            yield ("\n  " if index == 0 else ",\n  ") + name + ": "
            yield from _json_rows(value, "  ") if _is_rows(value) else (_json_value(value),)
        yield "\n}" if document else "}"
    elif _is_rows(document):
        yield from _json_rows(document, "")
    else:
        yield _json_value(document)


def _json_value(value: Any) -> str:
    return value if isinstance(value, JSONText) else json.dumps(value, allow_nan=False)


def _is_rows(value: Any) -> bool:
    return isinstance(value, (list, tuple, GeneratorType))


def _json_rows(items: Iterable[Any], indent: str) -> Iterator[str]:
    empty = True
    for item in items:
        yield ("[\n" if empty else ",\n") + indent + "  " + _json_value(item)
        empty = False
    yield "[]" if empty else "\n" + indent + "]"


def point_doc(point: Point) -> dict[str, Any]:
    """What every command that lists points says of each, under the same keys."""
    return {
        "id": point.id,
        "params": point.params,
        "status": point.status.value,
        "value": point.value,
        "predicted": point.predicted,
        "batch": point.batch,
        "origin": point.origin,
    }


def json_number(value: float | None) -> float | None:
    """JSON has no NaN: undefined numbers become null."""
    return None if value is None or not math.isfinite(value) else float(value)


def number_text(value: float | None) -> str:
    """A measurement or prediction for people: 6 significant digits, '-' when undefined."""
    return "-" if value is None or not math.isfinite(value) else f"{value:.6g}"


def write_table(rows: list[list[str]], out: TextIO) -> None:
    """Left-aligned columns, the first row being the header.

    Cells carry values from the experiment and from files (a categorical
    choice, a job name): a character a terminal does not show as itself (a
    bidirectional override would turn the rest of the row around) is written
    escaped (:func:`nas.names.printable`).
    """
    rows = [[printable(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        out.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        out.write("\n")
