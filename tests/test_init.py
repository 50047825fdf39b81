"""Tests of the package module (``netwatch/__init__.py``): :func:`netwatch.collector_paused`,
with the real garbage collector."""

from __future__ import annotations

import gc
import subprocess
import sys
from collections.abc import Iterator

import pytest

from netwatch import collector_paused


@pytest.fixture
def collector() -> Iterator[None]:
    """Nothing frozen during the test (an in-process replay of another test freezes what it
    made: those objects are thawed, then frozen again after), and the collector's switch put
    back as it was."""
    was_on = gc.isenabled()
    frozen = gc.get_freeze_count()
    gc.unfreeze()
    try:
        yield
    finally:
        gc.unfreeze()
        if frozen:
            gc.freeze()
        if was_on:
            gc.enable()
        else:
            gc.disable()


class _Node:
    """A container that can form a reference cycle."""

    def __init__(self) -> None:
        self.other: object = None


def test_the_collector_is_off_inside_and_back_on_after(collector: None) -> None:
    gc.enable()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off(collector: None) -> None:
    gc.disable()
    with collector_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_the_collector_is_back_on_after_an_exception(collector: None) -> None:
    gc.enable()
    with pytest.raises(ValueError, match="boom"), collector_paused():
        raise ValueError("boom")
    assert gc.isenabled()


def test_what_the_body_made_joins_the_oldest_generation_unfrozen(collector: None) -> None:
    gc.enable()
    gc.collect()
    with collector_paused():
        made = [_Node() for _ in range(50)]
        young_inside = gc.get_count()[0]
    assert young_inside >= 50
    assert gc.get_count()[0] < young_inside  # not left for the next young collection
    assert gc.get_freeze_count() == 0
    # a cycle made inside is still found by a full collection
    made[0].other = made[1]
    made[1].other = made[0]
    del made
    assert gc.collect() >= 2


def test_frozen_objects_stay_frozen(collector: None) -> None:
    gc.enable()
    kept = [_Node() for _ in range(10)]
    gc.freeze()
    frozen = gc.get_freeze_count()
    with collector_paused():
        more = [_Node() for _ in range(10)]
    assert gc.get_freeze_count() == frozen  # nothing thawed, nothing more frozen
    assert gc.isenabled()
    del kept, more


def test_importing_the_command_line_leaves_the_collector_as_it_was() -> None:
    code = (
        "import gc, sys\n"
        "gc.disable() if sys.argv[1] == 'off' else gc.enable()\n"
        "import netwatch.cli\n"
        "print(gc.isenabled(), gc.get_freeze_count(), gc.get_threshold())\n"
    )
    for state, enabled in (("on", "True"), ("off", "False")):
        done = subprocess.run(
            [sys.executable, "-c", code, state], capture_output=True, text=True, check=True
        )
        assert done.stdout.split(maxsplit=2) == [enabled, "0", "(700, 10, 10)\n"]
