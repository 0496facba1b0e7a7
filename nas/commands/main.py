"""The ``splinenas`` command line: argparse sub-commands, thin by design.

Each sub-command lives in a module of :mod:`nas.commands` that exposes
``register(subparsers)``; the handler it installs (``func``) takes the parsed
namespace and returns an exit code. Modules must not import torch at import
time: a login node has to answer ``splinenas status`` in well under a second.

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

from nas import __version__
from nas.commands.common import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UsageError

#: Modules of :mod:`nas.commands`, in the order their commands appear in --help.
COMMAND_MODULES = (
    "core",
    "control",
    "operate",
    "cost",
    "data",
    "demo",
    "plot",
    "report",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="splinenas",
        description="Neural architecture search with polyharmonic spline surrogates.",
    )
    parser.add_argument("--version", action="version", version=f"splinenas {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"nas.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"nas.commands.{name}":
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
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
