"""What counts as a number in a file a user or a trainer wrote.

JSON and TOML readers hand back ``True`` as an ``int`` and let ``NaN`` and
``Infinity`` through; none of them is a measurement, a bound or a prediction.
Every reader of such a value asks this one rule.
"""

from __future__ import annotations

import math
from typing import Any


def finite_number(value: Any) -> bool:
    """A number that is finite (a boolean is none)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
