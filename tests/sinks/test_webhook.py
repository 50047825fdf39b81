from __future__ import annotations

import json

from netwatch.alerts.grouping import regroup
from netwatch.config import Config
from netwatch.config.schema import SinkConfig
from netwatch.sinks.webhook import WebhookSink
from tests.sinks.conftest import make_alert, make_end
from tests.sinks.httpstub import Stub


def test_alertmanager_webhook_body_v4(stub: Stub) -> None:
    cfg = SinkConfig(name="oncall", type="webhook", url_env="NW_HOOK")
    sink = WebhookSink(cfg, environ={"NW_HOOK": stub.url + "/hook"})
    records = [make_alert().record(), make_alert(peer_name="other.example").record()]
    assert sink.send(records).ok
    (req,) = stub.requests
    assert req.path == "/hook"
    body = req.json()
    assert body["version"] == "4"
    assert body["status"] == "firing" and body["receiver"] == "oncall"
    assert body["truncatedAlerts"] == 0
    assert body["commonLabels"] == {
        "alertname": "cloud_registration",
        "severity": "high",
        "device": "lobby-1",
    }
    assert [a["labels"]["peer"] for a in body["alerts"]] == ["dev.hik-connect.com", "other.example"]
    first = body["alerts"][0]
    assert first["status"] == "firing" and len(first["fingerprint"]) == 16
    assert first["fingerprint"] != body["alerts"][1]["fingerprint"]
    assert first["startsAt"] == "2026-01-01T00:00:00.000000Z"


def test_text_record_and_dashboard_url_beside_alertmanager_fields() -> None:
    cfg = SinkConfig(name="oncall", type="webhook", url_env="NW_HOOK")
    sink = WebhookSink(cfg, environ={"NW_HOOK": "http://127.0.0.1:9/hook"})
    sink.use_alerts(
        Config.from_yaml(
            "alerts: {dashboard_url: 'https://g.example/d/c?var-camera={device}'}"
        ).alerts
    )
    record = make_alert(device='lobby "1"\n', site="north").record()
    body = json.loads(json.dumps(sink.body([record])))
    (alert,) = body["alerts"]
    assert alert["record"] == {**record, "status": "firing"}
    assert alert["dashboard_url"] == "https://g.example/d/c?var-camera=lobby%20%221%22%0A"
    assert alert["text"].startswith("[high] cloud_registration\nlobby-1 registered with")
    assert "Sensor: north" in alert["text"]
    # a line break from the wire cannot forge a line of the text
    assert 'Traffic: lobby "1"  -> dev.hik-connect.com (47.1.2.3:443)' in alert["text"]
    assert "Dashboard: https://g.example/d/c?var-camera=lobby%20%221%22%0A" in alert["text"]
    assert body["text"] == alert["text"] and body["status"] == "firing"


def test_an_ended_incident_is_resolved_with_its_span(stub: Stub) -> None:
    cfg = SinkConfig(name="oncall", type="webhook", url_env="NW_HOOK")
    sink = WebhookSink(cfg, environ={"NW_HOOK": stub.url + "/hook"})
    assert sink.send([make_end().record()]).ok
    body = stub.requests[0].json()
    (alert,) = body["alerts"]
    assert body["status"] == alert["status"] == "resolved"
    assert (alert["startsAt"], alert["endsAt"]) == (
        "2026-01-01T00:00:00.000000Z",
        "2026-01-01T01:00:00.000000Z",
    )
    assert alert["record"]["status"] == "ended" and alert["record"]["sightings"] == 4
    assert alert["text"].startswith("[critical] cloud_registration ENDED\n")
    assert "Peers: dev.hik-connect.com, 47.1.2.4" in alert["text"]
    assert alert["dashboard_url"] is None
    # one firing alert in the batch makes the batch firing
    both = sink.body([make_end().record(), make_alert().record()])
    assert both["status"] == "firing"
    assert [a["status"] for a in both["alerts"]] == ["resolved", "firing"]


def test_a_notification_is_one_post_with_an_alert_per_report(stub: Stub) -> None:
    """Like an Alertmanager group notification: one body, one alert per report, the body's
    text naming each."""
    record = regroup(
        [
            make_alert().record(1),
            make_alert(rule="rogue_dns", severity="medium", peer_name="dns.example").record(1),
        ]
    )
    sink = WebhookSink(
        SinkConfig(name="hook", type="webhook", url_env="U"), environ={"U": stub.url}
    )
    assert sink.send([record]).ok
    (req,) = stub.requests
    body = req.json()
    assert [a["labels"]["alertname"] for a in body["alerts"]] == ["cloud_registration", "rogue_dns"]
    assert body["commonLabels"]["device"] == "lobby-1"
    assert "[medium] rogue_dns" in body["text"] and "[high] cloud_registration" in body["text"]
