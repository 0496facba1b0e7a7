"""The ``splinenas`` command line: argparse sub-commands, thin by design.

Each sub-command lives in a module of :mod:`nas.commands` that exposes
``register(subparsers)``; the handler it installs (``func``) takes the parsed
namespace and returns an exit code. Modules must not import torch at import
time, and a command line names its command, so only that command's module is
imported: a login node answers ``splinenas status`` on a 1,000-point state in
under 0.3 s of CPU (``benchmarks/command_latency.py``).

Exit codes: 0 ok, 1 failure, 2 usage error. ``--json`` prints exactly one JSON
document on stdout, a failure's too (``{"error": ..., "exit_code": N}``); text for
people and logs go to stderr. This module imports little at its top: the rest loads
inside :func:`main`'s handling, where a Ctrl-C exits quietly.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from nas import __version__

#: Exit codes, declared here, where every exit is handled, and re-exported by
#: :mod:`nas.commands.common`: a Ctrl-C while that module loads exits with one too.
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

#: The module of :mod:`nas.commands` that registers each command, in --help order.
COMMANDS = {
    **dict.fromkeys(
        ("init", "add", "import", "record", "predict", "propose", "status", "export"), "core"
    ),
    **dict.fromkeys(("run", "controller"), "control"),
    **dict.fromkeys(("rerun", "cancel", "show", "unlock", "fsck", "expand"), "operate"),
    "cost": "cost",
    **dict.fromkeys(("front", "best"), "front"),
    "data": "data",
    "demo": "demo",
    "plot": "plot",
    "report": "report",
}
#: Commands that only read or rewrite the state's bookkeeping: no fit, no training.
BOOKKEEPING = frozenset({"status", "show", "export", "init", "add", "record", "unlock", "fsck"})
#: What numpy's OpenBLAS reads for its thread count; a user's own setting always wins.
_BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")


class UsageExit(SystemExit):
    """argparse's exit on a command line it cannot parse, with its message: under ``--json``
    it becomes the error document on stdout as well."""

    def __init__(self, message: str) -> None:
        super().__init__(EXIT_USAGE)
        self.message = message


class _Parser(argparse.ArgumentParser):
    """argparse, reading ``-1.5e1`` as a negative number (a loss, a bound), not an option.

    Sub-command parsers are made of the same class, so every command reads so.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from nas.numbers import NEGATIVE_NUMBER

        super().__init__(*args, **kwargs)
        self._negative_number_matcher = NEGATIVE_NUMBER

    def error(self, message: str) -> NoReturn:
        """argparse's usage and error line on stderr, then :class:`UsageExit`."""
        try:
            super().error(message)
        except SystemExit:
            raise UsageExit(message) from None


def build_parser(modules: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser with the commands of ``modules`` (default: every command)."""
    parser = _Parser(
        prog="splinenas",
        description="Neural architecture search with polyharmonic spline surrogates.",
    )
    parser.add_argument("--version", action="version", version=f"splinenas {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in dict.fromkeys(COMMANDS.values() if modules is None else modules):
        try:
            module = importlib.import_module(f"nas.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"nas.commands.{name}":
                raise
            continue
        module.register(subparsers)
    return parser


def command_of(argv: Sequence[str]) -> str | None:
    """The command ``argv`` names, when only ``-v`` precedes it (else the full parser decides)."""
    for word in argv:
        if word not in ("-v", "--verbose"):
            return word if word in COMMANDS else None
    return None


def single_blas_thread() -> None:
    """Load numpy with one BLAS thread, unless the user set a thread count.

    Starting OpenBLAS's pool (one thread per core: dozens on a login node)
    costs a bookkeeping command more CPU than all its own work, and it has
    no matrix worth a thread. The setting is taken out of the environment
    again once numpy is loaded, so no process started later inherits it.
    """
    if "numpy" in sys.modules or any(name in os.environ for name in _BLAS_THREAD_VARIABLES):
        return
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    try:
        import numpy  # noqa: F401  (OpenBLAS reads its thread count when numpy loads it)
    finally:
        del os.environ["OPENBLAS_NUM_THREADS"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command line and return its exit code.

    All but this module's few imports run inside the handling, numpy's and the
    command's included: a Ctrl-C while they load says "interrupted" and exits 1,
    as one during the command does, never with a traceback. With ``--json`` a
    failure is one document on stdout too (:func:`error_document`; a command's
    own failures: :func:`nas.commands.common.failure`).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    args = None
    try:
        args = _parsed(argv)
        return int(args.func(args))
    except UsageExit as exc:
        return _json_failure("--json" in argv, exc.message, EXIT_USAGE)
    except SystemExit as exc:  # argparse exits 0 on --help and --version
        return _exit_code(exc, getattr(args, "command", None), getattr(args, "json", False))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return _json_failure(getattr(args, "json", False), "interrupted", EXIT_FAILURE)
    except BrokenPipeError:  # e.g. `splinenas export --csv | head`: the reader left
        # Python flushes stdout at exit and would fail again; point it at /dev/null.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def _exit_code(exc: SystemExit, command: str | None, as_json: bool) -> int:
    """The exit code of a ``SystemExit``: its own when it is a number (argparse's), else 1,
    with its message on one line, as Python does, never a traceback (``sys.exit("why")``
    from code of the user's that ran in this process)."""
    if exc.code is None or isinstance(exc.code, int):
        return int(exc.code or 0)
    message = " ".join(str(exc.code).split())
    print(f"splinenas{f' {command}' if command else ''}: error: {message}", file=sys.stderr)
    return _json_failure(as_json, message, EXIT_FAILURE)


def _parsed(argv: list[str]) -> argparse.Namespace:
    """``argv`` parsed by the parser of the command it names, logging set up."""
    import logging

    command = command_of(argv)
    if command in BOOKKEEPING:
        single_blas_thread()
    parser = build_parser(None if command is None else [COMMANDS[command]])
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return args


def error_document(message: str, code: int) -> dict[str, Any]:
    """What ``--json`` prints on stdout when a command fails: the error and the exit code."""
    return {"error": message, "exit_code": code}


def _json_failure(as_json: bool, message: str, code: int) -> int:
    """``code``, after :func:`error_document` on stdout where ``--json`` was asked for (the
    line on stderr is written already).

    Written with :mod:`json` itself, in the layout of ``emit_json`` (a key per line):
    the commands' plumbing (:mod:`nas.commands.common`) may be what an interrupt
    stopped loading, and it imports this module.
    """
    if as_json:
        import json

        print(json.dumps(error_document(message, code), indent=2))
    return code
