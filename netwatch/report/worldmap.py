"""The audit report's world map: countries the cameras talked to, shaded by bytes sent there.

:func:`load_outlines` reads ``seeds/world_map.tsv`` (simplified Natural Earth outlines, public
domain; ``seeds/gen_world_map.py`` says how it was made) once per process; :func:`world_map`
renders one inline SVG (viewBox 0 0 720 300, equirectangular): every country in light grey,
each country the cameras reached filled in one of five shades by the bytes they sent to it
(a log scale between the smallest and the largest), with a ``<title>`` (name, bytes up and
down) as its tooltip. Countries without an outline (tiny states, "unknown", "others") are left
to the table beside the map.

Reads no config. A missing or damaged seed file gives an empty map (the report still renders:
the table and the bar chart carry the same numbers) and logs why once.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from html import escape
from pathlib import Path

from netwatch.report.view import TrafficRow

log = logging.getLogger(__name__)

MAP_FILE = "world_map.tsv"
VIEWBOX = "0 0 720 300"
LAND = "#dde3ea"
#: Fill of a reached country, from the fewest bytes sent to the most.
SHADES = ("#fdd49e", "#fdbb84", "#fc8d59", "#e34a33", "#b30000")
_PATH = re.compile(r"M[MLZ0-9.,-]*Z")  # what the generator writes: nothing to escape


@dataclass(frozen=True, slots=True)
class Outline:
    """One country: its ISO 3166-1 alpha-2 code, name and SVG path."""

    code: str
    name: str
    path: str


def _seeds_dir() -> Path:
    from netwatch.signatures.loader import default_seeds_dir  # noqa: PLC0415 - report only

    return default_seeds_dir()


@lru_cache(maxsize=1)
def load_outlines(path: Path | None = None) -> Mapping[str, Outline]:
    """The outlines by country code; empty (and logged) when the file cannot be read."""
    try:
        text = (path or _seeds_dir() / MAP_FILE).read_text(encoding="utf-8")
    except Exception as exc:  # a missing seeds dir raises ConfigError: no map, not no report
        log.warning("world map unavailable: %s", exc)
        return {}
    outlines: dict[str, Outline] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line or line.startswith("#"):
            continue
        cells = line.split("\t")
        if len(cells) != 3 or len(cells[0]) != 2 or not _PATH.fullmatch(cells[2]):
            log.warning("world map: line %d of %s is not CODE<TAB>NAME<TAB>PATH", number, MAP_FILE)
            continue
        outlines[cells[0]] = Outline(cells[0], cells[1], cells[2])
    return outlines


def shade(sent: int, low: int, high: int) -> str:
    """The fill of a country the cameras sent ``sent`` bytes to, on a log scale from ``low``
    to ``high`` (the smallest and largest over all reached countries)."""
    if high <= low:
        return SHADES[-1]
    at = (math.log1p(sent) - math.log1p(low)) / (math.log1p(high) - math.log1p(low))
    return SHADES[min(len(SHADES) - 1, max(0, int(at * len(SHADES))))]


def world_map(rows: Sequence[TrafficRow], outlines: Mapping[str, Outline] | None = None) -> str:
    """The inline SVG map of ``rows`` (one per country code); '' without outlines."""
    shapes = load_outlines() if outlines is None else outlines
    if not shapes:
        return ""
    reached = {r.label: r for r in rows if r.label in shapes}
    sent = [r.bytes_out for r in reached.values()]
    low, high = (min(sent), max(sent)) if sent else (0, 0)
    parts = [
        f'<svg id="world-map" class="map" role="img" viewBox="{VIEWBOX}" '
        'preserveAspectRatio="xMidYMid meet"><title>Countries the cameras talked to</title>'
    ]
    for code, outline in shapes.items():
        row = reached.get(code)
        if row is None:
            parts.append(f'<path d="{outline.path}" fill="{LAND}"/>')
            continue
        tip = f"{outline.name} ({code}): {row.bytes_out:,} bytes up, {row.bytes_in:,} down"
        parts.append(
            f'<path class="reached" data-country="{escape(code)}" d="{outline.path}" '
            f'fill="{shade(row.bytes_out, low, high)}"><title>{escape(tip)}</title></path>'
        )
    parts.append("</svg>")
    return "".join(parts)
