"""The command line shared by the ahead-of-time stores (netwatch/storecmd.py)."""

from __future__ import annotations

import pytest

from netwatch.storecmd import store_command


def _never() -> str:
    raise AssertionError("a check or a usage error must not rebuild the store")


def test_check_lists_what_is_stale_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    rc = store_command("netwatch.x", ["--check"], lambda: ["missing: a", "changed: b"], _never)
    assert rc == 1
    assert capsys.readouterr().out == "missing: a\nchanged: b\nrebuild it: python -m netwatch.x\n"


def test_check_of_an_up_to_date_store_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert store_command("netwatch.x", ["--check"], list, _never) == 0
    assert capsys.readouterr().out == ""


def test_other_arguments_are_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert store_command("netwatch.x", ["--force"], list, _never) == 2
    assert capsys.readouterr().err == "usage: python -m netwatch.x [--check]\n"


def test_no_arguments_rebuild(capsys: pytest.CaptureFixture[str]) -> None:
    def stale() -> list[str]:
        raise AssertionError("a rebuild does not check first")

    assert store_command("netwatch.x", [], stale, lambda: "wrote it (3 bytes)") == 0
    assert capsys.readouterr().out == "wrote it (3 bytes)\n"
