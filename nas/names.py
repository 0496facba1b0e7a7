"""What a name and a one-line value may hold: one rule each, with one message each.

A *name* (an experiment name, a job name) becomes part of file names,
scheduler job names and job-script directives without quoting, so it is
letters, digits, ``_``, ``.`` and ``-`` only. A *line* (a path, a directive
value, an argument) goes into a job script or a scheduler's command line: a
line break would end it early and start a command of its own, and other
control characters (NUL, escape, tab) are never meant, so none is allowed.
Every check of either rule, in the config or in the cluster layer, calls
these functions, so the answers agree and read alike. What is printed for
people goes through one rule too: a character a terminal does not show as
itself (a control, a bidirectional override) is shown escaped
(:func:`shown`, :func:`printable`).
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


#: Characters a terminal does not show as themselves: control characters (Cc), format
#: characters (Cf: the bidirectional embeddings and overrides U+202A-U+202E and isolates
#: U+2066-U+2069, which reorder the text around them; zero-width ones), the line and
#: paragraph separators (Zl, Zp), surrogates, private-use and unassigned code points.
_INVISIBLE = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})


def _visible(char: str) -> bool:
    return unicodedata.category(char) not in _INVISIBLE


def _all_visible(text: str) -> bool:
    """Whether every character of ``text`` shows as itself.

    ``str.isprintable`` answers the common case at C speed (every table cell of
    ``status`` asks): it is False for every category of :data:`_INVISIBLE` (and
    for spaces other than ' '), so only text it refuses is looked at per character.
    """
    return text.isprintable() or all(map(_visible, text))


def shown(value: str | os.PathLike[str]) -> str:
    """``value`` (a path the user gave) as a message shows it: as is, or quoted with escapes.

    A control character printed raw would break the one line of a message (a
    newline starts a line of its own), and a bidirectional control would turn the
    rest of it around, so a value with a character a terminal does not show as
    itself is shown as Python's ``repr``: quoted, ``\\n`` and ``\\u202e`` escaped.
    """
    text = os.fspath(value)
    return text if _all_visible(text) else repr(text)


def printable(text: str) -> str:
    """``text`` (lines for people that carry values from files) with each character a
    terminal does not show as itself written as its escape (``\\u2028``, ``\\x1b``).

    Line breaks and tabs are kept: the text is a block of lines (a job script),
    not one value, so it is not quoted as :func:`shown` quotes a value, and a
    backslash is left as it is. The value itself (what a job receives) is never
    changed: only what is printed.
    """
    if _all_visible(text):
        return text
    return "".join(char if _kept(char) else _escape(char) for char in text)


def _kept(char: str) -> bool:
    """Whether :func:`printable` writes ``char`` as it is: visible, a line break or a tab."""
    return _visible(char) or char in "\n\t"


def _escape(char: str) -> str:
    """``char`` as Python writes it in a string literal: ``\\x07``, ``\\u202e``, ``\\U000e0001``."""
    return char.encode("unicode_escape").decode("ascii")
