"""Model families by name: flat search coordinates -> spec -> network.

The coordinates each family accepts, and how a flat parameter dict is checked
against them, live torch-free in :mod:`nas.models.coordinates` (``splinenas
init`` applies the same rule); here the checked values become a frozen spec
and the spec a module.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import nn

from nas.models.biglittle import build_biglittle
from nas.models.coordinates import coordinate_names as coordinate_names  # re-exported
from nas.models.resnet import build_resnet
from nas.models.specs import BigLittleSpec, ModelSpec, spec_for


def build_from_spec(spec: ModelSpec, num_classes: int) -> nn.Module:
    """Build the network of any family's spec."""
    if isinstance(spec, BigLittleSpec):
        return build_biglittle(spec, num_classes)
    return build_resnet(spec, num_classes)


def build_model(family: str, params: Mapping[str, object], num_classes: int) -> nn.Module:
    """Build one candidate network of ``family`` from its flat parameter dict."""
    return build_from_spec(spec_for(family, params), num_classes)
