from __future__ import annotations

from netwatch.config.schema import SinkConfig
from netwatch.sinks.webhook import WebhookSink
from tests.sinks.conftest import make_alert
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
        "device_ip": "10.20.0.11",
    }
    assert [a["labels"]["peer"] for a in body["alerts"]] == ["dev.hik-connect.com", "other.example"]
    first = body["alerts"][0]
    assert first["status"] == "firing" and len(first["fingerprint"]) == 16
    assert first["fingerprint"] != body["alerts"][1]["fingerprint"]
    assert first["startsAt"] == "2026-01-01T00:00:00.000000Z"
