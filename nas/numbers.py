"""What counts as a number in a file a user or a trainer wrote.

JSON and TOML readers hand back ``True`` as an ``int`` and let ``NaN`` and
``Infinity`` through; none of them is a measurement, a bound or a prediction.
Every reader of such a value asks this one rule.
"""

from __future__ import annotations

import math
import re
from typing import Any

#: A number as typed in plain ASCII: decimal or scientific notation. ``nan`` and ``inf``
#: pass, so that the finiteness check of the value refuses them by name.
_PLAIN_NUMBER = re.compile(
    r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|nan|inf|infinity)", re.IGNORECASE
)


def finite_number(value: Any) -> bool:
    """A number that is finite (a boolean is none)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def plain_number(text: str) -> bool:
    """Whether ``text`` is a number in plain ASCII notation (``71.5``, ``-1e-3``, ``nan``).

    ``int()`` and ``float()`` also read ``7_1`` as 71 and Arabic-Indic or full-width
    digits as ASCII ones: a typo or a pasted value would become another number
    without a word. Text typed by a person is read as a number only in this form.
    """
    return _PLAIN_NUMBER.fullmatch(text) is not None
