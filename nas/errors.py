"""The one line that tells a user's mistake from a bug.

A :class:`UserError` is a failure that the user can act on: a config, a state
or result file, a command line, or a cluster that refuses what it was asked.
Every ``splinenas`` command reports one as a single line on stderr and exit
code 1 (:func:`nas.commands.common.reported`); any other exception escaping a
command is a bug and keeps its traceback. Each layer's error types derive
from it, so a command needs no list of the types it expects; it is the lowest
layer, which every other may import.
"""

from __future__ import annotations


class UserError(Exception):
    """A failure the user can act on: reported as one line naming what is wrong."""
