"""Plumbing shared by the sub-command modules: common options, error reporting, JSON out."""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nas.cli import EXIT_FAILURE, UsageError

Handler = Callable[[argparse.Namespace], int]


def json_option() -> argparse.ArgumentParser:
    """Parent parser for ``--json``."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    return parent


def state_option() -> argparse.ArgumentParser:
    """Parent parser for the required ``--state PATH``."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--state", required=True, type=Path, metavar="PATH", help="state file")
    return parent


def reported(
    failures: Callable[[], tuple[type[Exception], ...]],
) -> Callable[[Handler], Handler]:
    """Turn the expected failures of a handler into one line on stderr and exit code 1.

    ``failures`` is called when an exception arrives, so modules that are slow
    to import (scipy.stats behind the search) are only imported on failure.
    Anything else is a bug and keeps its traceback.
    """

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        def run(args: argparse.Namespace) -> int:
            try:
                return handler(args)
            except UsageError:
                raise
            except Exception as exc:
                if not isinstance(exc, failures()):
                    raise
                print(f"splinenas {args.command}: error: {exc}", file=sys.stderr)
                return EXIT_FAILURE

        return run

    return decorate


def emit_json(document: Any) -> None:
    """Print one JSON document on stdout (JSON has no NaN: callers map it to null)."""
    json.dump(document, sys.stdout, allow_nan=False, indent=2)
    sys.stdout.write("\n")
