"""What counts as a number in a file a user or a trainer wrote.

JSON and TOML readers hand back ``True`` as an ``int`` and let ``NaN`` and
``Infinity`` through; none of them is a measurement, a bound or a prediction.
Every reader of such a value asks this one rule.
"""

from __future__ import annotations

import math
import numbers
import re
import sys
from typing import Any

#: A number as typed in plain ASCII: decimal or scientific notation. ``nan`` and ``inf``
#: pass, so that the finiteness check of the value refuses them by name.
_UNSIGNED = r"(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|nan|inf|infinity)"
_PLAIN_NUMBER = re.compile(rf"[+-]?{_UNSIGNED}", re.IGNORECASE)


#: The largest magnitude a float holds; an int beyond it cannot become one.
_FLOAT_MAX = sys.float_info.max


def as_number(value: Any) -> int | float | None:
    """``value`` as a plain ``int`` (an integral number) or ``float`` (another real number),
    None when it is no real number.

    Training code holds its figures as numpy scalars as often as Python numbers
    (``np.float32`` from a metric, ``np.int64`` from a counter), and the JSON
    writer refuses those: :mod:`nas.trial` converts at its boundary with this, so
    a measurement is not lost at the end of a training for its type
    (:func:`finite_number` rightly accepts only what a file holds). Any
    :class:`numbers.Real` counts: Python's, numpy's scalars (registered as such),
    :class:`fractions.Fraction`. A boolean does not (``True`` is no measurement),
    nor a string or a tensor (``.item()`` gives its number). NaN and infinities
    are converted as they are: whether one is acceptable is the caller's rule.

    A float narrower than Python's (``np.float32``, ``np.float16``) becomes the
    shortest decimal that reads back as the same narrow float, the number its
    writer printed: widened bit for bit, top-1 0.93 was filed as 0.9300000071525574.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    if _narrow_float(value):
        return float(str(value))
    return float(value)


def _narrow_float(value: Any) -> bool:
    """A numpy-style floating scalar of fewer than 64 bits (numpy is not imported here)."""
    dtype = getattr(value, "dtype", None)
    return getattr(dtype, "kind", "") == "f" and getattr(dtype, "itemsize", 8) < 8


def finite_number(value: Any) -> bool:
    """A number that is finite (a boolean is none), and an int only if a float can hold it.

    ``math.isfinite`` raises OverflowError on ``10**400`` instead of answering, so
    a 400-digit integer written by a job would stop every reader that asked it.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(value, int):
        return abs(value) <= _FLOAT_MAX
    return math.isfinite(value)


def nonfinite_float(value: Any) -> bool:
    """NaN or an infinity: a figure its writer could not measure (Python's ``json.dump``
    writes them), not a wrong one such as a string or a negative count."""
    return isinstance(value, float) and not math.isfinite(value)


def json_int(text: str) -> int:
    """``parse_int`` for :func:`json.loads` of files people or jobs wrote: an integer a
    float cannot hold is refused while the file is decoded (a ValueError naming it),
    rather than an OverflowError in whichever reader converts it first."""
    value = int(text)
    if abs(value) > _FLOAT_MAX:
        raise ValueError(
            f"the integer {text[:12]}... ({len(text)} digits) is too large for a number"
        )
    return value


#: A negative number as typed: ``-15``, ``-1.5e1``, ``-inf``. argparse's own pattern
#: knows only ``-15`` and ``-1.5``, and took ``-1.5e1`` for an unknown option.
NEGATIVE_NUMBER = re.compile(rf"^-{_UNSIGNED}$", re.IGNORECASE)


#: A whole number as typed in plain ASCII: ``12``, ``-3``.
_PLAIN_INTEGER = re.compile(r"[+-]?[0-9]+")


def plain_integer(text: str) -> bool:
    """Whether ``text`` is a whole number in ASCII digits (``int()`` also reads ``1_0`` as 10
    and full-width or Arabic-Indic digits as ASCII ones)."""
    return _PLAIN_INTEGER.fullmatch(text) is not None


def plain_number(text: str) -> bool:
    """Whether ``text`` is a number in plain ASCII notation (``71.5``, ``-1e-3``, ``nan``).

    ``int()`` and ``float()`` also read ``7_1`` as 71 and Arabic-Indic or full-width
    digits as ASCII ones: a typo or a pasted value would become another number
    without a word. Text typed by a person is read as a number only in this form.
    """
    return _PLAIN_NUMBER.fullmatch(text) is not None


#: Beyond this magnitude an amount is written in scientific notation: a fixed-point
#: ``1e300`` is a 300-digit number no person reads (GPU-hours a job file claimed).
COMPACT_BEYOND = 1e6


def exact_text(value: float) -> str:
    """``value`` in as few digits as read back as it: ``%g`` where that is exact, else repr.

    Six significant digits turn 100.0000001 into "100", so a refusal of a value
    outside [0, 100] would name a legal-looking one, and ``record 2 71.9999999``
    would echo "recorded 72"; what the person gave is shown as given.
    """
    short = f"{value:g}"
    return short if float(short) == value else repr(float(value))


def amount_text(value: float, places: int = 1) -> str:
    """An amount for people (GPU-hours, device-hours): ``places`` decimals, or 4 significant
    digits in scientific notation (``1e+300``) beyond :data:`COMPACT_BEYOND`."""
    if math.isfinite(value) and abs(value) > COMPACT_BEYOND:
        return f"{value:.4g}"
    return f"{value:.{places}f}"


def positive_number(name: str, text: str, unit: str, error: type[Exception]) -> float:
    """``text``, the value of the environment variable ``name``, as a positive number.

    Raises ``error`` naming the variable, its value and ``unit``: a job's
    environment file holds a typo the person must fix. The caller names the
    error, so a timeout reads as a launch problem and a bandwidth as a device one.
    """
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise error(f"{name}={text!r}: expected a positive number of {unit}")
    return value


def plural(count: int, noun: str) -> str:
    """``1 point``, ``2 points``: a count with its noun (every layer says counts so)."""
    return f"{count} {noun}{'' if count == 1 else 's'}"
