from __future__ import annotations

import json
from typing import Any

from netwatch.alerts.model import Direction, EndReason, IncidentEnd, Severity
from netwatch.config import Config
from netwatch.config.schema import SinkConfig
from netwatch.sinks.slack import MAX_TEXT, SlackSink, alert_blocks
from tests.sinks.conftest import make_alert
from tests.sinks.httpstub import Stub

DASHBOARD = "https://grafana.example/d/netwatch-camera/camera?var-camera={device}&from={from_ms}"


def _sink(url: str = "http://127.0.0.1:9/x", dashboard: str | None = None) -> SlackSink:
    sink = SlackSink(SinkConfig(name="chat", type="slack", url_env="U"), environ={"U": url})
    if dashboard is not None:
        sink.use_alerts(
            Config.from_yaml(json.dumps({"alerts": {"dashboard_url": dashboard}})).alerts
        )
    return sink


def _fields(block: dict[str, Any]) -> dict[str, str]:
    return dict(f["text"].split("\n", 1) for f in block.get("fields", ()))


def test_text_and_blocks(stub: Stub) -> None:
    sink = _sink(stub.url + "/services/T/B/x")
    records = [make_alert().record(), make_alert(rule="rogue_dns", severity="medium").record()]
    assert sink.send(records).ok
    body = stub.requests[0].json()
    line = (
        "[high] cloud_registration lobby-1 -&gt; dev.hik-connect.com CN: "
        "lobby-1 registered with &lt;Hik-Connect&gt; &amp; co"
    )
    assert body["text"] == line + "\n" + line.replace(
        "[high] cloud_registration", "[medium] rogue_dns"
    )
    header, section, header2, _ = body["blocks"]
    assert header == {
        "type": "header",
        "text": {"type": "plain_text", "text": "[high] cloud_registration"},
    }
    assert header2["text"]["text"] == "[medium] rogue_dns"
    assert section["text"]["text"] == (
        "*lobby-1 registered with &lt;Hik-Connect&gt; &amp; co*\n"
        "lobby-1 -&gt; dev.hik-connect.com (47.1.2.3:443)"
    )
    fields = _fields(section)
    assert fields["*Camera*"] == "lobby-1 (10.20.0.11)"
    assert fields["*Traffic*"] == "lobby-1 -&gt; dev.hik-connect.com (47.1.2.3:443)"
    assert fields["*Country / AS*"] == "CN"
    assert fields["*First seen*"] == fields["*Last seen*"] == "2026-01-01 00:00:00 UTC"
    assert "accessory" not in section  # no dashboard_url configured


def test_every_field_a_person_needs_reads_right() -> None:
    record = make_alert(
        site="north-wing",
        group="wards",
        platform="Hik-Connect",
        device_mac="bc:ad:28:00:00:01",
        vendor="Hikvision",
        proto="tcp",
        peer_asn=37963,
        peer_org="Hangzhou Alibaba",
        evidence={
            "bytes_up": 1_234_567,
            "bytes_down": 168,
            "device_model": "DS-2CD2043G2-I",
            "folded": [{"rule": "denied_country", "severity": "medium", "summary": "CN is denied"}],
        },
    ).record(3)
    (_, section) = alert_blocks(record)
    fields = _fields(section)
    assert fields == {
        "*Sensor*": "north-wing",
        "*Camera*": "lobby-1 (10.20.0.11, bc:ad:28:00:00:01, Hikvision DS-2CD2043G2-I)",
        "*Group*": "wards",
        "*Platform*": "Hik-Connect",
        "*Traffic*": "lobby-1 -&gt; dev.hik-connect.com (47.1.2.3:443/tcp)",
        "*Country / AS*": "CN, AS37963 Hangzhou Alibaba",
        "*Bytes*": "1.2 MB up, 168 B down",
        "*First seen*": "2026-01-01 00:00:00 UTC",
        "*Last seen*": "2026-01-01 00:00:00 UTC",
        "*Seen*": "3 times",
    }
    assert "\u2022 also [medium] denied_country: CN is denied" in section["text"]["text"]


def test_inbound_arrow_points_at_the_camera() -> None:
    record = make_alert(
        rule="inbound_access", direction=Direction.INBOUND, peer_name=None, peer_ip="203.0.113.9"
    ).record()
    body = _sink().body([record])
    assert body["text"].startswith("[high] inbound_access 203.0.113.9 CN -&gt; lobby-1: ")
    assert _fields(body["blocks"][1])["*Traffic*"] == "203.0.113.9:443 -&gt; lobby-1"


def test_without_a_peer_there_is_no_arrow_to_nowhere() -> None:
    record = make_alert(
        rule="unmanaged_device", peer_ip=None, peer_name=None, peer_port=None, peer_country=None
    ).record()
    body = _sink().body([record])
    text = json.dumps(body)
    assert "-> -" not in text and "-&gt; -" not in text and "-&gt; :" not in text
    assert (
        body["text"]
        == "[high] unmanaged_device lobby-1: lobby-1 registered with &lt;Hik-Connect&gt; &amp; co"
    )
    assert "*Traffic*" not in _fields(body["blocks"][1])


def test_dashboard_button_quotes_values_from_the_wire() -> None:
    record = make_alert(device="lobby 1/&x=<y>").record()
    section = _sink(dashboard=DASHBOARD).body([record])["blocks"][1]
    button = section["accessory"]
    assert button["type"] == "button" and button["text"]["text"] == "Camera dashboard"
    assert button["url"] == (
        "https://grafana.example/d/netwatch-camera/camera"
        "?var-camera=lobby%201%2F%26x%3D%3Cy%3E&from=1767224700000"  # 15 min before
    )


def test_hostile_names_neither_mention_nor_break_the_message() -> None:
    evil = '<!channel> "}]\n<https://evil.example|click>'
    record = make_alert(device=evil, peer_name=evil, summary=evil).record()
    data = json.dumps(_sink().body([record]))
    body = json.loads(data)  # still one well-formed JSON document
    assert "<!channel>" not in data and "<https://" not in data
    assert "&lt;!channel&gt;" in body["text"]
    section = body["blocks"][1]
    assert "\n" not in section["text"]["text"].split("\n", 1)[0]  # one line per value
    camera = next(f["text"] for f in section["fields"] if f["text"].startswith("*Camera*"))
    assert camera.count("\n") == 1  # the title's line break only


def test_an_ended_incident_is_clearly_marked_with_its_span_and_peers() -> None:
    end = IncidentEnd(
        alert=make_alert(platform="Hik-Connect"),
        ts=1_767_240_000.0,
        first_seen=1_767_225_600.0,
        last_seen=1_767_229_200.0,
        sightings=5,
        severity=Severity.CRITICAL,
        peers=("dev.hik-connect.com", "47.1.2.4"),
        more_peers=2,
        reason=EndReason.QUIET,
    )
    body = _sink().body([end.record()])
    assert body["text"].startswith("[critical] cloud_registration ENDED lobby-1 -&gt; ")
    assert "seen 5 times" in body["text"]
    assert "peers dev.hik-connect.com, 47.1.2.4 +2 more" in body["text"]
    assert body["blocks"][0]["text"]["text"] == "[critical] cloud_registration ENDED"
    fields = {k: v for block in body["blocks"][1:] for k, v in _fields(block).items()}
    assert fields["*Status*"] == "ended (not seen for alerts.resolve_s)"
    assert fields["*First seen*"] == "2026-01-01 00:00:00 UTC"
    assert fields["*Last seen*"] == "2026-01-01 01:00:00 UTC"
    assert fields["*Peers*"] == "dev.hik-connect.com, 47.1.2.4 +2 more"


def test_a_full_batch_keeps_slack_block_limits() -> None:
    folded = [{"rule": "r", "severity": "low", "summary": "y" * 5000}]
    evidence = {"bytes_up": 1, "bytes_down": 2, "folded": folded}
    big = make_alert(summary="x" * 10_000, site="s", group="g", platform="p", evidence=evidence)
    end = IncidentEnd(
        alert=big, ts=big.ts, first_seen=big.ts, last_seen=big.ts, sightings=2,
        severity=Severity.HIGH, peers=("a" * 3000,),
    )  # fmt: skip
    sink = _sink(dashboard=DASHBOARD)
    body = sink.body([end.record()] * sink.max_batch)
    assert len(body["blocks"]) <= 50
    for block in body["blocks"]:
        assert len(block.get("fields", ())) <= 10
        assert all(len(f["text"]) <= 2000 for f in block.get("fields", ()))
        if block["type"] == "section" and "text" in block:
            assert len(block["text"]["text"]) <= MAX_TEXT
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= 150


def test_rate_limited_is_retryable(stub: Stub) -> None:
    stub.script.append((429, {"Retry-After": "3"}))
    sink = SlackSink(SinkConfig(name="c", type="slack", url_env="U"), environ={"U": stub.url})
    result = sink.send([make_alert().record()])
    assert not result.ok and result.retry_after == 3.0 and not result.permanent
