"""The view model: totals over cameras, the sections' selections, and input read defensively
(a partly written, older or hostile inventory renders; it never raises)."""

from __future__ import annotations

from typing import Any

import pytest

from netwatch.report.view import LOCAL, MAX_ROWS, camera_of, describe_how, view_of


def camera(ident: str, vendor: str | None, **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": ident,
        "macs": [ident],
        "ipv4": ["10.0.0.1"],
        "ipv6": [],
        "vendor": vendor,
        "model": None,
        "recognised_by": ["vendor_oui"],
        "managed": False,
        "peers": {"countries": [], "asns": [], "names": []},
        "bytes_out_external": 0,
        "incidents": [],
    }
    base.update(extra)
    return base


def traffic(key: str, label: Any, out: int, into: int = 0) -> dict[str, Any]:
    return {key: label, "bytes_out": out, "bytes_in": into, "flows": 1}


def incident(rule: str, severity: str = "high", **extra: Any) -> dict[str, Any]:
    return {
        "rule": rule,
        "severity": severity,
        "summary": rule,
        "first": 1.0,
        "last": 2.0,
        "count": 1,
        "open": False,
        "reached": None,
        **extra,
    }


def test_summary_counts_vendors_outside_countries_and_bytes() -> None:
    inv = {
        "cameras": [
            camera(
                "a",
                "Hikvision",
                bytes_out_external=500,
                peers={
                    "countries": [
                        traffic("country", "CN", 400),
                        traffic("country", LOCAL, 9),
                        traffic("country", "unknown", 100),
                    ],
                    "asns": [
                        {
                            "asn": 4134,
                            "org": "CHINANET",
                            "bytes_out": 400,
                            "bytes_in": 0,
                            "flows": 1,
                        },
                        {"asn": None, "org": "X", "bytes_out": 100, "bytes_in": 0, "flows": 1},
                    ],
                    "names": [],
                },
            ),
            camera(
                "b",
                "Hikvision",
                bytes_out_external=50,
                peers={"countries": [traffic("country", "CN", 50)], "asns": [], "names": []},
            ),
            camera("c", None),
        ]
    }
    view = view_of(inv)
    s = view.summary
    assert s.cameras == 3
    assert [(v.vendor, v.cameras, v.outside) for v in s.by_vendor] == [
        ("Hikvision", 2, 2),
        ("unknown", 1, 0),
    ]
    assert s.talking_outside == 2
    assert s.countries == ("CN",)  # unknown is no country
    assert s.asns == 2
    assert s.bytes_up == 550
    assert [(r.label, r.bytes_out) for r in view.countries] == [("CN", 450), ("unknown", 100)]
    assert view.asns[0].label == "AS4134" and view.asns[0].detail == "CHINANET"
    assert view.asns[1].label == "X"


def test_sections_pick_their_rules_and_findings_sort_by_severity() -> None:
    inv = {
        "cameras": [
            camera(
                "a",
                "Dahua",
                incidents=[
                    incident("new_destination", "medium"),
                    incident("audio_stream", "medium"),
                    incident("inbound_access", "high"),
                    incident("upnp_port_mapping", "high"),
                    incident("outbound_stream", "critical"),
                    incident("cloud_registration", "high"),
                ],
                platforms=[
                    {"name": "Dahua cloud", "first_seen": 1.0, "last_seen": 2.0, "flows": 3}
                ],
            )
        ]
    }
    view = view_of(inv)
    assert [f.finding.rule for f in view.exposure] == ["inbound_access", "upnp_port_mapping"]
    assert [f.finding.rule for f in view.audio] == ["audio_stream"]
    assert [f.finding.rule for f in view.registrations] == ["cloud_registration"]
    assert [p.platform.name for p in view.platforms] == ["Dahua cloud"]
    assert view.summary.on_platforms == 1
    assert view.cameras[0].findings[0].rule == "outbound_stream"
    assert [f.finding.severity for f in view.findings] == ["critical"] + ["high"] * 3 + [
        "medium"
    ] * 2
    assert view.findings_not_listed == 0
    assert dict(view.summary.findings_by_severity) == {"critical": 1, "high": 3, "medium": 2}


def test_totals_are_bounded() -> None:
    rows = [traffic("name", f"n{i}.example", i) for i in range(MAX_ROWS + 10)]
    inv = {"cameras": [camera("a", "X", peers={"countries": [], "asns": [], "names": rows})]}
    names = view_of(inv).names
    assert len(names) == MAX_ROWS
    assert names[0].label == f"n{MAX_ROWS + 9}.example"


@pytest.mark.parametrize(
    "inventory",
    [
        {},
        {"cameras": "nope"},
        {"cameras": [None, 3, "x", []]},
        {"cameras": [{"peers": {"countries": [None, {"country": 7, "bytes_out": "9"}]}}]},
        {"cameras": [{"incidents": [{"severity": None, "evidence": [1]}, 5], "macs": [1, None]}]},
        {"cameras": [{"platforms": [{"name": None}, {"name": "P", "first_seen": "x"}]}]},
        {"cameras": [{"managed": "yes", "bytes_out_external": True, "first_seen": "x"}]},
        {"generated": 5, "site": ["x"], "source": {"captures": "x"}},
    ],
)
def test_mistyped_input_never_raises(inventory: dict[str, Any]) -> None:
    view = view_of(inventory)
    for cam in view.cameras:
        assert isinstance(cam.title, str)
        assert cam.bytes_out_external >= 0
        assert cam.managed is False


def test_camera_title_prefers_the_inventory_name_then_vendor_and_model() -> None:
    named = camera_of(camera("a", "Axis", name="Lobby", model="P3245"))
    assert named.title == "Lobby (Axis P3245)"
    anon = camera_of(camera("a", None, mac_vendor="Zhen Shi Information Technology"))
    assert anon.title == "camera (Zhen Shi Information Technology) 10.0.0.1"


def test_evidence_becomes_text_pairs() -> None:
    inc = incident(
        "cloud_registration",
        evidence={
            "names_seen": ["a", "b"],
            "bytes_up": 5,
            "empty": [],
            "none": None,
            "tls": True,
            "nested": {"k": "v"},
        },
    )
    (finding,) = camera_of(camera("a", "X", incidents=[inc])).findings
    assert dict(finding.evidence) == {
        "names_seen": "a, b",
        "bytes_up": "5",
        "tls": "yes",
        "nested": "k: v",
    }


@pytest.mark.parametrize(
    ("how", "words"),
    [
        ("inventory", "listed in the inventory"),
        ("vendor_oui", "MAC prefix of a camera maker"),
        ("dhcp_hostname:dlink-dcs-dhcp-hostname", "DHCP host name (dlink-dcs-dhcp-hostname)"),
        ("banner:rtsp_server", "server banner (rtsp_server)"),
        ("dlink_setup", "discovery reply (dlink_setup)"),
        ("newfield:x", "newfield (x)"),
    ],
)
def test_how_in_words(how: str, words: str) -> None:
    assert describe_how(how) == words


def test_totals_count_the_cameras_of_each_row() -> None:
    peers = {"countries": [traffic("country", "CN", 10)], "asns": [], "names": []}
    inv = {"cameras": [camera("a", "X", peers=peers), camera("b", "X", peers=peers)]}
    (cn,) = view_of(inv).countries
    assert (cn.label, cn.cameras, cn.bytes_out, cn.flows) == ("CN", 2, 20, 2)


def test_findings_overview_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("netwatch.report.view.MAX_FINDINGS_LISTED", 3)
    inv = {"cameras": [camera("a", "X", incidents=[incident(f"r{i}") for i in range(5)])]}
    view = view_of(inv)
    assert len(view.findings) == 3 and view.findings_not_listed == 2
    assert len(view.cameras[0].findings) == 5


def test_a_huge_inventory_is_read_only_so_far(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("netwatch.report.view.MAX_CAMERAS", 2)
    monkeypatch.setattr("netwatch.report.view.MAX_ENTRIES", 3)
    names = [traffic("name", f"n{i}", 1) for i in range(10)]
    big = camera("a", "X", peers={"countries": [], "asns": [], "names": names})
    view = view_of({"cameras": [big, camera("b", "X"), camera("c", "X")]})
    assert len(view.cameras) == 2 and view.not_shown == 1
    assert len(view.cameras[0].names) == 3


def test_an_unknown_severity_is_unknown() -> None:
    inc = incident("x", "<b>bad</b>")
    (finding,) = camera_of(camera("a", "X", incidents=[inc])).findings
    assert finding.severity == "unknown"


def test_geoip_line_names_the_data_and_its_attribution_once() -> None:
    assert view_of({"cameras": []}).geoip is None  # an older inventory says nothing
    geo = {"name": "DBIP", "built": "2026-09-01", "licence": "CC BY 4.0", "attribution": "By X"}
    line = view_of({"geoip": geo}).geoip
    assert line is not None and line.line == "GeoIP data: DBIP, built 2026-09-01; CC BY 4.0. By X"
    carried = view_of({"geoip": {**geo, "licence": "CC BY 4.0 (By X)"}}).geoip
    assert carried is not None and carried.line.count("By X") == 1
    assert view_of({"geoip": ["not", "a", "dict"]}).geoip is None


def test_peers_inside_the_site_are_no_network_reached() -> None:
    asns = [traffic("asn", None, 900) | {"org": LOCAL}, traffic("asn", 3320, 5) | {"org": "DTAG"}]
    view = view_of({"cameras": [camera("a", "Axis", peers={"asns": asns})]})
    assert [r.label for r in view.cameras[0].asns] == ["AS3320"]
    assert [r.label for r in view.asns] == ["AS3320"] and view.summary.asns == 1
