"""The Teams sink: one Adaptive Card message per batch, posted to the secret URL."""

from __future__ import annotations

from pathlib import Path

from netwatch.config import Config
from netwatch.config.schema import SinkConfig
from netwatch.sinks.teams import CARD_CONTENT_TYPE, TeamsSink, card_text
from tests.sinks.conftest import make_alert, make_end
from tests.sinks.httpstub import Stub


def make_sink(stub: Stub, tmp_path: Path) -> TeamsSink:
    url_file = tmp_path / "teams-url"
    url_file.write_text(stub.url + "/workflows/abc/triggers/manual/run?sig=s3cr3t\n")
    return TeamsSink(SinkConfig(name="ward", type="teams", url_file=url_file), timeout_s=5.0)


def test_posts_an_adaptive_card_with_the_alert_facts(stub: Stub, tmp_path: Path) -> None:
    records = [
        make_alert(peer_asn=37963, peer_org="Hangzhou Alibaba", site="north").record(4),
        make_alert(rule="rogue_dns", severity="medium", device="ward-2").record(),
    ]
    assert make_sink(stub, tmp_path).send(records).ok
    (req,) = stub.requests
    assert req.path == "/workflows/abc/triggers/manual/run?sig=s3cr3t"
    body = req.json()
    assert body["type"] == "message"
    (attachment,) = body["attachments"]
    assert (
        attachment["contentType"] == CARD_CONTENT_TYPE == "application/vnd.microsoft.card.adaptive"
    )
    card = attachment["content"]
    assert (card["type"], card["version"]) == ("AdaptiveCard", "1.2")
    texts = [e["text"] for e in card["body"] if e["type"] == "TextBlock"]
    assert texts[0] == "netwatch: 2 alerts"
    assert texts[1] == r"\[high\] cloud\_registration on lobby-1"
    assert texts[2] == "lobby-1 registered with <Hik-Connect> & co"
    headings = [
        e for e in card["body"] if e.get("weight") == "Bolder" and e.get("size") == "Medium"
    ]
    assert [h["color"] for h in headings] == ["Attention", "Default"]  # high, medium
    facts = [
        {f["title"]: f["value"] for f in e["facts"]} for e in card["body"] if e["type"] == "FactSet"
    ]
    assert facts[0] == {
        "Severity": "high",
        "Rule": r"cloud\_registration",
        "Sensor": "north",
        "Camera": "lobby-1 (10.20.0.11)",
        "Traffic": "lobby-1 -> dev.hik-connect.com (47.1.2.3:443)",
        "Country / AS": "CN, AS37963 Hangzhou Alibaba",
        "First seen": "2026-01-01 00:00:00 UTC",
        "Last seen": "2026-01-01 00:00:00 UTC",
        "Seen": "4 times",
    }
    assert facts[1]["Rule"] == r"rogue\_dns" and "Sensor" not in facts[1]
    assert "actions" not in card  # no dashboard_url: no link


def test_refusals_are_classified_and_the_url_never_shown(stub: Stub, tmp_path: Path) -> None:
    sink = make_sink(stub, tmp_path)
    stub.script += [(404, {}), (429, {"Retry-After": "30"})]
    gone = sink.send([make_alert().record()])
    assert (gone.ok, gone.permanent, gone.error) == (False, True, "HTTP 404")
    busy = sink.send([make_alert().record()])
    assert (busy.ok, busy.permanent, busy.retry_after) == (False, False, 30.0)
    assert "s3cr3t" not in repr(sink)


def test_card_text_is_one_escaped_line() -> None:
    assert card_text("a\r\nb\x00*c* [x](y)") == r"a b \*c\* \[x\](y)"
    assert card_text("- not a list") == r"\- not a list"
    assert card_text("1. not a list") == r"1\. not a list"
    assert len(card_text("x" * 2000)) == 500


def test_an_ended_incident_and_the_dashboard_link(stub: Stub, tmp_path: Path) -> None:
    sink = make_sink(stub, tmp_path)
    sink.use_alerts(
        Config.from_yaml("alerts: {dashboard_url: 'https://g.example/c?d={device}'}").alerts
    )
    assert sink.send([make_end().record()]).ok
    card = stub.requests[0].json()["attachments"][0]["content"]
    heading = card["body"][1]
    assert heading["text"] == r"\[critical\] cloud\_registration ENDED on lobby-1"
    assert heading["color"] == "Good"
    (facts,) = [
        {f["title"]: f["value"] for f in e["facts"]} for e in card["body"] if e["type"] == "FactSet"
    ]
    assert facts["Status"] == "ended (not seen for alerts.resolve\\_s)"
    assert facts["Last seen"] == "2026-01-01 01:00:00 UTC"
    assert facts["Peers"] == "dev.hik-connect.com, 47.1.2.4"
    assert card["actions"] == [
        {
            "type": "Action.OpenUrl",
            "title": "Dashboard: lobby-1",
            "url": "https://g.example/c?d=lobby-1",
        }
    ]
