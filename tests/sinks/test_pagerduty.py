from __future__ import annotations

import hashlib
import json

import pytest

from netwatch.config.schema import SinkConfig
from netwatch.sinks.pagerduty import PagerdutySink
from tests.sinks.conftest import make_alert, make_end
from tests.sinks.httpstub import Stub

KEY = "0123456789abcdef0123456789abcdef"


def _sink(stub: Stub) -> PagerdutySink:
    cfg = SinkConfig(name="pd", type="pagerduty", routing_key_env="NW_PD")
    return PagerdutySink(cfg, environ={"NW_PD": KEY}, url=stub.url + "/v2/enqueue")


@pytest.mark.parametrize(
    ("severity", "expected"),
    [
        ("critical", "critical"),
        ("high", "error"),
        ("medium", "warning"),
        ("low", "info"),
        ("info", "info"),
    ],
)
def test_trigger_event(stub: Stub, severity: str, expected: str) -> None:
    stub.default = 202
    assert _sink(stub).send([make_alert(severity=severity).record()]).ok
    (req,) = stub.requests
    assert req.path == "/v2/enqueue"
    body = req.json()
    identity = json.dumps(["cloud_registration", "lobby-1", "dev.hik-connect.com"])
    assert body["routing_key"] == KEY
    assert body["event_action"] == "trigger"
    assert body["dedup_key"] == hashlib.sha256(identity.encode()).hexdigest()
    payload = body["payload"]
    assert payload["severity"] == expected
    assert payload["summary"] == "lobby-1 registered with <Hik-Connect> & co"
    assert payload["source"] == "lobby-1"
    assert payload["timestamp"] == "2026-01-01T00:00:00.000000Z"
    assert payload["custom_details"]["evidence"] == {"endpoint": "hik-connect", "bytes": 1200}


def test_same_identity_same_dedup_key(stub: Stub) -> None:
    stub.default = 202
    sink = _sink(stub)
    assert sink.send([make_alert().record(), make_alert(ts=1.0e9, summary="again").record(4)]).ok
    keys = [r.json()["dedup_key"] for r in stub.requests]
    assert len(keys) == 2 and keys[0] == keys[1]


def test_only_202_is_success_and_retry_rules(stub: Stub) -> None:
    stub.script += [(200, {}), (429, {"Retry-After": "12"}), (502, {}), (400, {})]
    sink = _sink(stub)
    rec = [make_alert().record()]
    first = sink.send(rec)
    assert not first.ok and first.permanent  # 200 is not PagerDuty's answer
    limited = sink.send(rec)
    assert not limited.ok and limited.retry_after == 12.0 and not limited.permanent
    bad_gateway = sink.send(rec)
    assert not bad_gateway.ok and not bad_gateway.permanent
    assert sink.send(rec).permanent


def test_an_ended_incident_resolves_with_the_trigger_dedup_key(stub: Stub) -> None:
    stub.default = 202
    sink = _sink(stub)
    # the platform is the identity: a trigger about one relay and the end of the incident
    # (its last report about another) share the key
    trigger = make_alert(platform="Hik-Connect", peer_name="relay1.example").record()
    end = make_end(platform="Hik-Connect", peer_name="relay2.example").record()
    assert sink.send([trigger]).ok and sink.send([end]).ok
    first, second = (r.json() for r in stub.requests)
    assert first["event_action"] == "trigger"
    assert second == {
        "routing_key": KEY,
        "event_action": "resolve",
        "dedup_key": first["dedup_key"],
    }
    identity = json.dumps(["cloud_registration", "lobby-1", "Hik-Connect"])
    assert first["dedup_key"] == hashlib.sha256(identity.encode()).hexdigest()


def test_two_sensors_keep_two_incidents(stub: Stub) -> None:
    stub.default = 202
    sink = _sink(stub)
    assert sink.send([make_alert(site="north").record(), make_alert(site="south").record()]).ok
    keys = {r.json()["dedup_key"] for r in stub.requests}
    assert len(keys) == 2
