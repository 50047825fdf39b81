"""netwatch/compiled.py: an optional compiled part, or None under its switches."""

from __future__ import annotations

import importlib.util

import pytest

from netwatch.compiled import optional

BUILT = importlib.util.find_spec("netwatch._mmdb") is not None


@pytest.mark.skipif(not BUILT, reason="netwatch._mmdb is not built (no compiler)")
def test_a_built_part_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NETWATCH_PURE", raising=False)
    monkeypatch.setenv("NETWATCH_CORE", "python")
    from netwatch._mmdb import Tree  # noqa: PLC0415 - only when built

    assert optional("_mmdb", "Tree") is Tree  # not a loop part: NETWATCH_CORE does not matter


def test_pure_turns_every_part_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETWATCH_PURE", "1")
    assert optional("_mmdb", "Tree") is None
    assert optional("_deep", "dns_scan", loop=True) is None


@pytest.mark.skipif(
    importlib.util.find_spec("netwatch._deep") is None, reason="netwatch._deep is not built"
)
def test_the_python_loop_turns_loop_parts_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NETWATCH_PURE", raising=False)
    monkeypatch.setenv("NETWATCH_CORE", "python")
    assert optional("_deep", "dns_scan", loop=True) is None
    monkeypatch.setenv("NETWATCH_CORE", "c")
    assert optional("_deep", "dns_scan", loop=True) is not None


def test_a_missing_extension_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NETWATCH_PURE", raising=False)
    assert optional("_no_such_extension", "thing") is None
