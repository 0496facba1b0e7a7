"""MAX_WIDTH holds for the widths a network gets, after ``phi``, in ``cost`` and the trainer alike;
an integer coordinate refuses a fraction in every family."""

from __future__ import annotations

import pytest

from nas.models import ModelConfigError
from nas.models.coordinates import MAX_WIDTH, coordinate, width_names
from nas.models.footprint import estimate
from nas.models.specs import spec_for

RESNET = {"block": "basic", "c1": 16, "g1": 32, "g2": 64, "g3": 32, "g4": 32}
RESNET |= {f"d{i}": 1 for i in range(1, 5)}
RESNEXT = {k: v for k, v in RESNET.items() if k != "block"}
RESNEXT |= {"c1": 8, "groups": 1, "width_per_group": 64}
BLRESNEXT = {"w1": 64, "w2": 128, "w3": 256, "w4": 512, "d1": 3, "d2": 4, "d3": 6, "d4": 3}
BLRESNEXT |= {"alpha": 2, "beta": 4, "cardinality": 32, "basewidth": 4}


def test_phi_cannot_widen_a_stage_past_max_width() -> None:
    # probe-t §8: phi = 5000 gave a 160,000-channel stage that `cost` priced.
    message = (
        r"family 'resnet': coordinate 'c1' = 16 times phi = 5000 gives 80000 channels, "
        rf"more than MAX_WIDTH = {MAX_WIDTH}"
    )
    with pytest.raises(ModelConfigError, match=message):
        spec_for("resnet", {**RESNET, "phi": 5000})


def test_the_first_stage_past_the_bound_is_named_in_every_family() -> None:
    with pytest.raises(ModelConfigError, match=r"'w4' = 512 times phi = 200 gives 102400"):
        spec_for("blresnext", {**BLRESNEXT, "phi": 200})
    with pytest.raises(ModelConfigError, match=r"'g2' = 64 times phi = 1500 gives 96000"):
        spec_for("resnext", {**RESNEXT, "phi": 1500})


def test_a_phi_that_overflows_is_refused_not_a_crash() -> None:
    with pytest.raises(ModelConfigError, match="gives inf channels"):
        spec_for("resnet", {**RESNET, "phi": 1e308})


def test_widths_up_to_the_bound_are_built() -> None:
    spec = spec_for("resnet", {**RESNET, "g1": MAX_WIDTH // 2, "phi": 2.0})
    assert max(spec.scaled_widths) == MAX_WIDTH
    with pytest.raises(ModelConfigError, match="'g1' = 32768 times phi = 2.0001"):
        spec_for("resnet", {**RESNET, "g1": MAX_WIDTH // 2, "phi": 2.0001})


def test_cost_and_the_trainer_refuse_it_before_allocating() -> None:
    # `splinenas cost` prices through footprint.estimate, the trainer builds through
    # registry.build_model: both take the spec from spec_for.
    with pytest.raises(ModelConfigError, match="more than MAX_WIDTH"):
        estimate("resnet", {**RESNET, "phi": 5000}, 10, resolution=16, batch_per_gpu=32)
    from nas.models.registry import build_model

    with pytest.raises(ModelConfigError, match="more than MAX_WIDTH"):
        build_model("resnet", {**RESNET, "phi": 5000}, 10)


def test_every_width_coordinate_and_only_those_are_scaled() -> None:
    assert width_names("resnet") == ("c1", "g1", "g2", "g3", "g4")
    assert width_names("resnext") == ("c1", "g1", "g2", "g3", "g4")
    assert width_names("blresnext") == ("w1", "w2", "w3", "w4")


@pytest.mark.parametrize(("family", "name"), [("resnet", "g1"), ("blresnext", "alpha")])
def test_an_integer_coordinate_refuses_a_fraction_in_every_family(family: str, name: str) -> None:
    # What a point.json or [model] fixed gives is never rounded; a searched int
    # dimension is snapped by the search itself (and `cost` says so in a note).
    with pytest.raises(ModelConfigError, match=rf"coordinate '{name}' must be an int, got 4.5"):
        coordinate(family, name).coerce(family, 4.5)
    assert coordinate(family, name).coerce(family, 4.0) == 4
