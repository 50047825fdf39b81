"""The HTML page: every string escaped, nothing fetched, printable, the sections present.

Structure is checked with the standard library's HTML parser (a real browser opens it in
test_browser.py)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import pytest

from netwatch.report import render_report
from netwatch.report.html import bar_chart, esc, human_bytes, when
from netwatch.report.view import TrafficRow

HOSTILE = '<script>alert("x")</script><img src=http://198.51.100.7/p.png onerror=alert(1)>'
#: Attributes that make a browser fetch something.
FETCHING = frozenset({"src", "href", "srcset", "poster", "data", "action", "formaction"})


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: str) -> Tags:
    tags = Tags()
    tags.feed(page)
    tags.close()
    return tags


def hostile_inventory() -> dict[str, Any]:
    """An inventory where every string a wire or a file can set is hostile."""
    row = {"bytes_out": 10, "bytes_in": 5, "flows": 1}
    return {
        "version": 1,
        "generated": HOSTILE,
        "site": HOSTILE,
        "source": {"captures": [HOSTILE]},
        "cameras": [
            {
                "id": HOSTILE,
                "name": HOSTILE,
                "macs": [HOSTILE],
                "ipv4": [HOSTILE],
                "ipv6": [],
                "vendor": HOSTILE,
                "mac_vendor": HOSTILE,
                "model": HOSTILE,
                "firmware": HOSTILE,
                "serial": HOSTILE,
                "recognised_by": [HOSTILE],
                "group": HOSTILE,
                "managed": True,
                "first_seen": 1.0,
                "last_seen": 2.0,
                "platforms": [{"name": HOSTILE, "first_seen": 1.0, "last_seen": 2.0, "flows": 1}],
                "peers": {
                    "countries": [{"country": HOSTILE, **row}],
                    "asns": [{"asn": None, "org": HOSTILE, **row}],
                    "names": [{"name": HOSTILE, **row}],
                },
                "bytes_out_external": 10,
                "incidents": [
                    {
                        "rule": "inbound_access",
                        "severity": HOSTILE,
                        "reached": HOSTILE,
                        "first": 1.0,
                        "last": 2.0,
                        "count": 1,
                        "open": True,
                        "summary": HOSTILE,
                        "peer": HOSTILE,
                        "evidence": {HOSTILE: HOSTILE, "server": [HOSTILE]},
                    },
                    {"rule": HOSTILE, "severity": "high", "summary": HOSTILE},
                ],
            }
        ],
    }


def test_hostile_strings_stay_text() -> None:
    page = render_report(hostile_inventory())
    tags = parse(page)
    names = [t for t, _ in tags.tags]
    assert "script" not in names and "img" not in names
    assert "<script>" not in page and "<img" not in page
    text = "".join(tags.text)
    assert text.count(HOSTILE) >= 15  # shown, as text, wherever the data put it


def test_nothing_is_fetched() -> None:
    page = render_report(hostile_inventory())
    tags = parse(page)
    for tag, attrs in tags.tags:
        for name, value in attrs.items():
            if name in FETCHING:
                assert tag == "a" and name == "href" and (value or "").startswith("#"), (tag, attrs)
    style = page.split("<style>")[1].split("</style>")[0]
    assert not re.search(r"url\(|@import|https?://", style)
    csp = [a for t, a in tags.tags if t == "meta" and a.get("http-equiv")]
    assert csp and "default-src 'none'" in (csp[0].get("content") or "")


def test_printable_one_camera_per_page() -> None:
    page = render_report(hostile_inventory())
    style = page.split("<style>")[1].split("</style>")[0]
    media = style[style.index("@media print") :]
    assert re.search(r"\.camera\s*\{[^}]*break-before:\s*page", media)


def test_sections_in_order() -> None:
    page = render_report(hostile_inventory())
    ids = [a.get("id") for _, a in parse(page).tags if a.get("id")]
    wanted = ["summary", "countries", "asns", "names", "platforms", "exposure", "audio"]
    wanted.append("findings")
    assert [i for i in ids if i in wanted] == wanted
    assert sum(1 for i in ids if (i or "").startswith("cam-")) == 1


def test_empty_inventory_says_so() -> None:
    page = render_report({"version": 1, "cameras": []})
    text = "".join(parse(page).text)
    assert "No camera was recognised." in text
    assert "No camera talked outside the site." in text
    assert "No camera was reached from outside the site." in text


def test_bar_chart_scales_to_the_largest() -> None:
    rows = [TrafficRow("CN", 1000, 10, 1), TrafficRow("US", 250, 0, 1)]
    svg = bar_chart(rows, "t")
    widths = [int(w) for w in re.findall(r'<rect class="(?:up|down)"[^>]*width="(\d+)"', svg)]
    assert widths == [420, 4, 105, 0]
    assert bar_chart([], "t") == ""
    long = bar_chart([TrafficRow("x" * 40, 1, 1, 1)], "t")
    assert ">" + "x" * 23 + "\u2026<title>" + "x" * 40 + "</title>" in long


@pytest.mark.parametrize(
    ("n", "text"),
    [(0, "0 B"), (999, "999 B"), (1000, "1.0 kB"), (1_600_000, "1.6 MB"), (10**16, "10000.0 TB")],
)
def test_human_bytes(n: int, text: str) -> None:
    assert human_bytes(n) == text


def test_when_and_esc() -> None:
    assert when(1768467600.0) == "2026-01-15 09:00:00 UTC"
    assert when(None) == "" and when(1e300) == ""
    assert esc("\"<&>'") == "&quot;&lt;&amp;&gt;&#x27;"


def test_geoip_attribution_in_header_and_footer() -> None:
    geo = {"name": "DBIP", "licence": "CC BY 4.0", "attribution": "IP Geolocation by DB-IP"}
    page = render_report({"version": 1, "cameras": [], "geoip": geo})
    assert page.count("IP Geolocation by DB-IP") == 2
    assert re.search(r"<footer[^>]*>GeoIP data: DBIP; CC BY 4.0\. IP Geolocation", page)
    assert 'id="geoip"' not in render_report({"version": 1, "cameras": []})
