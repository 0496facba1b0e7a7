"""The ``splinenas`` command line: argparse sub-commands, thin by design.

Each sub-command lives in a module of :mod:`nas.commands` that exposes
``register(subparsers)``; the handler it installs (``func``) takes the parsed
namespace and returns an exit code. Modules must not import torch at import
time, and a command line names its command, so only that command's module is
imported: a login node answers ``splinenas status`` on a 1,000-point state in
under 0.3 s of CPU (``benchmarks/command_latency.py``).

Exit codes: 0 ok, 1 failure, 2 usage error. ``--json`` prints exactly one JSON
document on stdout; text for people and logs go to stderr.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from nas import __version__
from nas.numbers import NEGATIVE_NUMBER

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


class _Parser(argparse.ArgumentParser):
    """argparse, reading ``-1.5e1`` as a negative number (a loss, a bound), not an option.

    Sub-command parsers are made of the same class, so every command reads so.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = NEGATIVE_NUMBER


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
    argv = sys.argv[1:] if argv is None else list(argv)
    command = command_of(argv)
    if command in BOOKKEEPING:
        single_blas_thread()
    from nas.commands.common import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UsageError

    parser = build_parser(None if command is None else [COMMANDS[command]])
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.func(args))
    except UsageError as exc:
        print(f"splinenas {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_FAILURE
    except BrokenPipeError:  # e.g. `splinenas export --csv | head`: the reader left
        # Python flushes stdout at exit and would fail again; point it at /dev/null.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
