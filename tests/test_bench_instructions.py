"""The scenarios ``tools.bench instructions`` counts under valgrind still run (without valgrind here)."""

from __future__ import annotations

import pytest

from tools.bench import _instructions_child as child


@pytest.mark.parametrize("name", sorted(child.SCENARIOS))
def test_each_scenario_runs_its_operations(name: str) -> None:
    assert child.main([name, "32"]) == 0
    assert not child._STORES  # every store it opened is closed


def test_more_operations_than_the_set_up_holds_are_refused() -> None:
    with pytest.raises(SystemExit, match="at most"):
        child.main(["put", str(child.SIZE + 1)])
