"""Configurable image-classification families searched by splinenas.

The families (ResNet, ResNeXt and Big-Little ResNeXt) are built from frozen
spec dataclasses so that every search coordinate (a stage width, a depth, a
branch ratio) maps onto one field. :mod:`nas.models.registry` turns a flat
parameter dict into a spec and a module; :mod:`nas.models.cost` counts
parameters, multiply-accumulates and training memory without allocating.

This package module imports no torch, so that a login-node command can catch
:class:`ModelConfigError` without paying for the import.
"""

from __future__ import annotations

from nas.errors import UserError


class ModelConfigError(UserError, ValueError):
    """A model family, coordinate or spec value that cannot build a network."""
