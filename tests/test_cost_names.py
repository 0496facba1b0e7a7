"""One rule names a cost: a bound, ``tradeoff``, ``--where`` and a cost function agree."""

from __future__ import annotations

import pytest

from nas.control.constraints import parse_where
from nas.control.usercosts import checked_answer
from nas.search.settings import SearchSettings, SettingError

#: name -> whether it may name a cost (a metric is a name, so a cost name is one too).
NAMES = {
    "latency_ms": True,
    "latency-ms": True,
    "top1.ema": True,
    "2fast": True,
    "fast ms": False,
    "a/b": False,
    "": False,
    "x<y": False,
}


def answers(check) -> bool:
    """Whether ``check`` accepts (no exception) rather than refuses (ValueError)."""
    try:
        check()
    except ValueError:
        return False
    return True


@pytest.mark.parametrize(("name", "valid"), NAMES.items())
def test_every_reader_of_a_cost_name_takes_the_same_names(name: str, valid: bool) -> None:
    readers = {
        "bound": lambda: SearchSettings(constraints={name: 1.0}),
        "tradeoff": lambda: SearchSettings(tradeoff=name),
        "--where": lambda: parse_where(f"{name}<=3"),
        "[model] costs": lambda: checked_answer({name: 1.0}, {}),
    }
    verdicts = {reader: answers(check) for reader, check in readers.items()}
    assert verdicts == dict.fromkeys(readers, valid)


def test_a_refused_name_is_named_in_the_message() -> None:
    with pytest.raises(SettingError, match="expected a cost name .* got 'fast ms'"):
        SearchSettings(tradeoff="fast ms")
    with pytest.raises(ValueError, match="cost name 'fast ms' is not a name"):
        checked_answer({"fast ms": 1.0}, {})
