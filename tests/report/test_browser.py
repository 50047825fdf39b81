"""The report opened in a real headless browser (Debian's ``chromium``): the page the browser
built names every camera, its vendor and the countries it talked to; it prints to PDF with
a page per camera; and it makes no network request, not even for hostile strings that look
like markup (a loopback HTTP server counts requests; a control page shows it would see
one). Skips when chromium is not installed (``./dev test`` installs it) or, for the real
captures, when ../shared/corpus is absent.
"""

from __future__ import annotations

import http.server
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from netwatch.config import Config
from netwatch.deep import PARSERS
from netwatch.enrich.geo import BUILTIN_ATTRIBUTION
from netwatch.inventory import build_from_captures
from netwatch.report import write_report
from tests.conftest import REPO, corpus_file
from tests.report.test_html import parse

DEMO = REPO / "pcaps" / "demo" / "camera-site-demo.pcap"
CHROMIUM_TIMEOUT_S = 120
#: One capture per real camera (each capture is its own site: they are not replayed together).
REAL_CAPTURES = (
    "sentinel_dlink-dcs935l_setup-A2.pcap",
    "sentinel_dlink-dcs930l-daycam_setup-C2.pcap",
    "sentinel_edimax-cam1_setup-A2.pcap",
    "sentinel_edimax-cam2_setup-C1.pcap",
    "sentinel_ednet-cam1_setup-C5.pcap",
    "sentinel_ednet-cam2_setup-C3.pcap",
    "shf_dlink-dcs8000lh_basefw_wan.pcap",
    "shf_xiaomi-cam_nofw_wan_snaplen150.pcapng",
)


class Chromium:
    """Runs headless chromium on a file, with no network services of its own."""

    def __init__(self, exe: str, profile: Path) -> None:
        self.exe = exe
        self.profile = profile

    def run(self, page: Path, *args: str) -> str:
        cmd = [
            self.exe,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--hide-scrollbars",
            f"--user-data-dir={self.profile}",
            *args,
            page.as_uri(),
        ]
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT_S, check=False
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    def dom_text(self, page: Path) -> str:
        """The text of the DOM the browser built."""
        pieces = parse(self.run(page, "--dump-dom")).text
        return " ".join(" ".join(pieces).split())


@pytest.fixture
def chromium(tmp_path: Path) -> Chromium:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("chromium is not installed (apt-get install chromium; ./dev test does)")
    return Chromium(exe, tmp_path / "profile")


def outside_countries(cam: dict[str, Any]) -> set[str]:
    return {r["country"] for r in cam["peers"]["countries"]} - {"local", "others"}


def assert_names_every_camera(text: str, inventory: dict[str, Any]) -> None:
    assert inventory["cameras"]
    for cam in inventory["cameras"]:
        for mac in cam["macs"]:
            assert mac in text
        vendor = cam["vendor"] or cam["mac_vendor"]
        assert vendor and vendor in text
        for country in outside_countries(cam):
            assert f" {country} " in f" {text} "
        for name in cam["peers"]["names"][:5]:
            assert name["name"] in text


def test_demo_report_in_the_browser(chromium: Chromium, tmp_path: Path) -> None:
    inventory = build_from_captures([DEMO], Config.default())
    page = tmp_path / "report.html"
    write_report(inventory, page)
    text = chromium.dom_text(page)
    assert_names_every_camera(text, inventory)
    assert "fd00:20::12" in text and "10.20.0.12" in text  # the dual-stack camera, once
    assert text.count("Hikvision 10.20.0.12") >= 1 and "Hikvision fd00:20::12" not in text
    assert "inbound_access" in text and "service_port" in text  # exposure, with evidence
    assert "audio_stream" in text
    assert BUILTIN_ATTRIBUTION in text  # the built-in DB-IP data's licence requires it
    assert "Dahua cloud" in text and "Dahua cloud, Dahua" not in text  # one name per platform
    # the map: the browser built it, each country the cameras reached shaded with its tooltip
    dom = chromium.run(page, "--dump-dom")
    assert '<svg id="world-map"' in dom
    reached = set(re.findall(r'data-country="([A-Z]{2})"', dom))
    assert reached == set().union(*(outside_countries(c) for c in inventory["cameras"])) - {
        "unknown"
    }
    shot = tmp_path / "report.png"
    chromium.run(page, f"--screenshot={shot}", "--window-size=1200,2400")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pdf = tmp_path / "report.pdf"
    chromium.run(page, f"--print-to-pdf={pdf}", "--no-pdf-header-footer")
    pages = len(re.findall(rb"/Type\s*/Page[^s]", pdf.read_bytes()))
    assert pages > len(inventory["cameras"])  # the overview, then a page (or more) each


def test_real_cameras_in_the_browser(chromium: Chromium, tmp_path: Path) -> None:
    captures = [corpus_file("pcaps", "camera-real", name) for name in REAL_CAPTURES]
    if "pppp" not in PARSERS:
        captures = [c for c in captures if "xiaomi" not in c.name]
    cameras: list[dict[str, Any]] = []
    for capture in captures:
        cameras += build_from_captures([capture], Config.default())["cameras"]
    inventory = {
        "version": 1,
        "source": {"captures": [str(c) for c in captures]},
        "cameras": cameras,
    }
    # one camera each (ids are addresses, and two sites may use the same one: count MACs)
    assert len(cameras) == len({c["macs"][0] for c in cameras}) == len(captures)
    page = tmp_path / "real.html"
    write_report(inventory, page)
    text = chromium.dom_text(page)
    assert_names_every_camera(text, inventory)
    for model in ("DCS-935L", "DCS-930LB", "DCS-8000LH"):
        assert model in text


class _Counter(http.server.BaseHTTPRequestHandler):
    hits: list[str]

    def do_GET(self) -> None:
        self.hits.append(self.path)
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def loopback_server() -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server and the paths it was asked for."""
    hits: list[str] = []
    handler = type("Counter", (_Counter,), {"hits": hits})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        server.server_close()


def test_no_network_request_even_for_hostile_strings(
    chromium: Chromium, tmp_path: Path, loopback_server: tuple[str, list[str]]
) -> None:
    base, hits = loopback_server
    control = tmp_path / "control.html"
    control.write_text(f'<!DOCTYPE html><img src="{base}/control">')
    chromium.run(control, "--dump-dom")
    assert hits == ["/control"]  # a page that fetches is seen
    hits.clear()
    bait = (
        f'<img src="{base}/img"><link rel=stylesheet href="{base}/css">'
        f'<script src="{base}/js"></script><style>@import "{base}/imp";</style>'
    )
    row = {"bytes_out": 1, "bytes_in": 1, "flows": 1}
    inventory = {
        "version": 1,
        "site": bait,
        "cameras": [
            {
                "id": bait,
                "name": bait,
                "vendor": bait,
                "macs": ["02:00:00:00:00:01"],
                "peers": {
                    "countries": [{"country": bait, **row}],
                    "asns": [],
                    "names": [{"name": bait, **row}],
                },
                "bytes_out_external": 1,
                "incidents": [
                    {
                        "rule": "inbound_access",
                        "severity": "high",
                        "summary": bait,
                        "evidence": {"server": bait},
                    }
                ],
            }
        ],
    }
    page = tmp_path / "hostile.html"
    write_report(inventory, page)
    text = chromium.dom_text(page)
    assert hits == []
    assert f"{base}/img" in text  # shown as text
