"""``propose`` takes its defaults from the one declaration of the search settings."""

from __future__ import annotations

import inspect

from nas.search.propose import propose
from nas.search.settings import SearchSettings


def test_min_distance_default_is_the_declared_setting() -> None:
    default = inspect.signature(propose).parameters["min_distance"].default
    assert default == SearchSettings().min_distance
