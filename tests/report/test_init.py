"""write_report: the page written atomically, its size returned, nothing left on failure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from netwatch.report import render_report, write_inventory, write_report

INVENTORY = {"version": 1, "cameras": [{"id": "02:00:00:00:00:01", "vendor": "Axis"}]}


def test_write_report_replaces_the_file(tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    out.write_text("old")
    size = write_report(INVENTORY, out)
    assert out.read_bytes() == render_report(INVENTORY).encode()
    assert size == out.stat().st_size
    assert out.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]


def test_write_report_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(_src: str, _dst: Path) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("netwatch.report.os.replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_report(INVENTORY, tmp_path / "r.html")
    assert list(tmp_path.iterdir()) == []


def test_write_inventory_is_the_json(tmp_path: Path) -> None:
    out = tmp_path / "inventory.json"
    size = write_inventory(INVENTORY, out)
    assert json.loads(out.read_text()) == INVENTORY and size == out.stat().st_size
