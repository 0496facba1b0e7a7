"""Configurable image-classification families searched by splinenas.

The families (ResNet, ResNeXt and Big-Little ResNeXt) are built from frozen
spec dataclasses so that every search coordinate (a stage width, a depth, a
branch ratio) maps onto one field. :mod:`nas.models.specs` turns a flat
parameter dict into a spec and :mod:`nas.models.registry` a spec into a
module; :mod:`nas.models.footprint` counts parameters, multiply-accumulates
and training memory in closed form, and :mod:`nas.models.cost` checks those
counts against a traced forward pass.

This package module, ``coordinates``, ``specs`` and ``footprint`` import no
torch: a login node validates candidates and computes their known costs
without it.
"""

from __future__ import annotations

from nas.errors import UserError


class ModelConfigError(UserError, ValueError):
    """A model family, coordinate or spec value that cannot build a network."""
