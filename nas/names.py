"""What a name and a one-line value may hold: one rule each, with one message each.

A *name* (an experiment name, a job name) becomes part of file names,
scheduler job names and job-script directives without quoting, so it is
letters, digits, ``_``, ``.`` and ``-`` only. A *line* (a path, a directive
value, an argument) goes into a job script or a scheduler's command line: a
line break would end it early and start a command of its own, and other
control characters (NUL, escape, tab) are never meant, so none is allowed.
Every check of either rule, in the config or in the cluster layer, calls
these functions, so the answers agree and read alike.
"""

from __future__ import annotations

import os
import re
import unicodedata

#: A name: letters, digits, ``_``, ``.`` and ``-``.
NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]+")


def name_problem(value: object) -> str | None:
    """Why ``value`` is not a name, or None when it is one."""
    if isinstance(value, str) and NAME_PATTERN.fullmatch(value):
        return None
    return f"expected letters, digits, '_', '.' or '-', got {value!r}"


#: Control characters, and the line and paragraph separators U+2028 and U+2029, at
#: which ``str.splitlines`` (and so a reader of a job script) starts a new line too.
_NOT_IN_A_LINE = frozenset({"Cc", "Zl", "Zp"})


def line_problem(value: str | os.PathLike[str]) -> str | None:
    """Why ``value`` is not one line of text, or None when it is one (empty is a line)."""
    text = os.fspath(value)
    if any(unicodedata.category(c) in _NOT_IN_A_LINE for c in text):
        return f"expected one line without control characters, got {text!r}"
    return None


def shown(value: str | os.PathLike[str]) -> str:
    """``value`` (a path the user gave) as a message shows it: as is, or quoted with escapes.

    A control character printed raw would break the one line of a message (a
    newline starts a line of its own), so a value that is not one line
    (:func:`line_problem`) is shown as Python's ``repr``: quoted, ``\\n`` escaped.
    """
    text = os.fspath(value)
    return text if line_problem(text) is None else repr(text)
