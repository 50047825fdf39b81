"""The report's world map: outlines from the seed file, reached countries shaded by bytes."""

from __future__ import annotations

import re
from pathlib import Path

from netwatch.report.view import TrafficRow
from netwatch.report.worldmap import LAND, SHADES, Outline, load_outlines, shade, world_map


def test_the_seed_file_has_one_outline_per_country() -> None:
    outlines = load_outlines()
    assert len(outlines) > 150
    for code in ("US", "CN", "DE", "RU", "BR", "FR", "NO", "JP", "AU", "ZA"):
        assert code in outlines, code
    assert "AQ" not in outlines  # Antarctica is left out of the map
    for o in outlines.values():
        assert re.fullmatch(r"[A-Z]{2}", o.code) and o.path.startswith("M") and o.name


def test_a_damaged_file_loses_only_its_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "world_map.tsv"
    path.write_text(
        '# header\nAA\tGood\tM1,1L2,2L3,1Z\nBB\tEvil\tM1,1"/><script>x</script>Z\nbad line\n',
        encoding="utf-8",
    )
    outlines = load_outlines.__wrapped__(path)
    assert list(outlines) == ["AA"]
    assert load_outlines.__wrapped__(tmp_path / "missing.tsv") == {}


def test_reached_countries_are_shaded_by_bytes_sent() -> None:
    outlines = {
        "US": Outline("US", "United States", "M1,1L2,2Z"),
        "CN": Outline("CN", "China", "M3,3L4,4Z"),
        "FR": Outline("FR", "France", "M5,5L6,6Z"),
    }
    rows = [
        TrafficRow("US", 545_000, 600, 4),
        TrafficRow("CN", 900, 6_700, 2),
        TrafficRow("unknown", 10, 10, 1),  # no outline: left to the table
    ]
    svg = world_map(rows, outlines)
    assert svg.startswith('<svg id="world-map"') and svg.endswith("</svg>")
    assert f'data-country="US" d="M1,1L2,2Z" fill="{SHADES[-1]}"' in svg
    assert f'data-country="CN" d="M3,3L4,4Z" fill="{SHADES[0]}"' in svg
    assert f'<path d="M5,5L6,6Z" fill="{LAND}"/>' in svg
    assert "United States (US): 545,000 bytes up, 600 down" in svg
    assert world_map(rows, {}) == ""


def test_shade_scale() -> None:
    assert shade(10, 10, 10) == SHADES[-1]
    assert shade(10, 10, 10**6) == SHADES[0]
    assert shade(10**6, 10, 10**6) == SHADES[-1]
    assert shade(3_000, 10, 10**6) == SHADES[2]
