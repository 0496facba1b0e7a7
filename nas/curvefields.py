"""The fields of a learning-curve entry, declared once for both layers that hold curves.

The trainer writes entries to ``curve.jsonl`` (:mod:`nas.pointdir.curve`) and
the state keeps each point's curve as a table of the same fields
(:mod:`nas.record.state`, :mod:`nas.record.hdf5`). Neither layer may import
the other, so the declaration sits on the ground floor, which both may
import; it imports nothing.
"""

from __future__ import annotations

#: Fields of a curve entry, in the order of ``curve.jsonl`` and of the stored table.
CURVE_FIELDS = ("epoch", "images", "loss", "top1", "top5", "lr", "seconds")
#: The fields that count (stored as integers); the others are figures (floats; ``loss``
#: may be None where it was not finite).
CURVE_COUNTS = ("epoch", "images")
#: A command's own figures (``{"epoch": 3, "val_acc": 71.2}``) the state keeps per curve,
#: by first appearance: each is a column of the stored table, and a command that logs a
#: figure per layer must not make every commit write thousands of columns.
MAX_OWN_FIGURES = 32
#: The longest name of an own figure the state keeps (a column name of the stored table).
MAX_FIGURE_NAME = 64
