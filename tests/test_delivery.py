from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from netwatch.config.schema import SinkConfig
from netwatch.delivery import Deliverer
from netwatch.outbox import Outbox
from netwatch.sinks.alertmanager import AlertmanagerSink
from netwatch.sinks.base import Delivery, Record, Sink
from netwatch.sinks.jsonl import JsonlSink
from netwatch.sinks.pagerduty import PagerdutySink
from tests.sinks.conftest import make_alert
from tests.sinks.httpstub import serve


def _am(url: str) -> AlertmanagerSink:
    return AlertmanagerSink(SinkConfig(name="am", type="alertmanager", urls=(url,)), timeout_s=2)


def _peers(bodies: list[list[Record]]) -> list[str]:
    return [a["labels"]["peer"] for body in bodies for a in body]


def test_outage_restart_recovery_delivers_each_alert_once(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    alerts = [make_alert(peer_name=f"p{i}.example") for i in range(5)]
    with serve(default=500) as am:
        box = Outbox(path, rng=lambda: 1.0)
        deliverer = Deliverer(box, [_am(am.url)], clock=lambda: 0.0)
        for alert in alerts[:3]:
            assert deliverer.enqueue(alert) == 1
        assert deliverer.pump(0.0) == 0  # outage
        assert deliverer.stats["am"].failed == 3
        assert box.depth() == {"am": 3}
        assert deliverer.pump(0.5) == 0 and len(am.requests) == 1  # backing off: not tried
        box.close()  # restart while Alertmanager is down

        box = Outbox(path, rng=lambda: 1.0)
        deliverer = Deliverer(box, [_am(am.url)])
        for alert in alerts[3:]:
            deliverer.enqueue(alert)
        am.default = 200  # recovery
        assert deliverer.pump(1.0) == 5
        assert deliverer.pump(100.0) == 0
        assert box.depth() == {}
        assert deliverer.stats["am"].delivered == 5
        bodies = [r.json() for r in am.requests]
    delivered = _peers(bodies[1:])
    assert sorted(delivered) == sorted(a.peer for a in alerts)  # each exactly once
    assert len(bodies) == 2  # the backlog went out as one batch


def test_retry_after_delays_next_attempt(tmp_path: Path) -> None:
    with serve() as am:
        am.script.append((429, {"Retry-After": "60"}))
        deliverer = Deliverer(Outbox(":memory:", rng=lambda: 1.0), [_am(am.url)])
        deliverer.enqueue(make_alert())
        assert deliverer.pump(1000.0) == 0
        assert deliverer.pump(1059.0) == 0 and len(am.requests) == 1
        assert deliverer.pump(1060.0) == 1 and len(am.requests) == 2


def test_batches_per_sink_and_filters() -> None:
    with serve(default=202) as pd:
        pd_cfg = SinkConfig(
            name="pd", type="pagerduty", routing_key_env="K", min_severity="critical"
        )
        pd_sink = PagerdutySink(pd_cfg, environ={"K": "k"}, url=pd.url)
        box = Outbox(":memory:")
        deliverer = Deliverer(box, [pd_sink])
        assert deliverer.enqueue(make_alert()) == 0  # high < critical
        for i in range(3):
            deliverer.enqueue(make_alert(severity="critical", peer_name=f"p{i}"), count=i + 1)
        assert deliverer.pump(0.0, budget=2) == 2
        assert deliverer.pump(0.0) == 1
        assert len(pd.requests) == 3  # one event per request
        assert [r.json()["payload"]["custom_details"]["count"] for r in pd.requests] == [1, 2, 3]


class _Boom(Sink, abstract=True):
    def send(self, payloads: Sequence[Record]) -> Delivery:
        raise RuntimeError("sink exploded")


class _Bad(Sink, abstract=True):
    def send(self, payloads: Sequence[Record]) -> Delivery:
        return Delivery.failure("HTTP 400", permanent=True)


def test_failing_sink_is_isolated_and_never_raises(tmp_path: Path) -> None:
    boom = _Boom(SinkConfig(name="boom", type="jsonl", path=tmp_path / "x"))
    bad = _Bad(SinkConfig(name="bad", type="jsonl", path=tmp_path / "y"))
    log = JsonlSink(SinkConfig(name="log", type="jsonl", path=tmp_path / "alerts.jsonl"))
    box = Outbox(":memory:")
    deliverer = Deliverer(box, [boom, bad, log])
    assert deliverer.enqueue(make_alert()) == 3
    assert deliverer.pump(0.0) == 1
    assert deliverer.stats["boom"].failed == 1 and deliverer.stats["log"].delivered == 1
    assert deliverer.stats["bad"].dropped == 1
    assert box.depth() == {"boom": 1}  # retried later; the permanent failure is dropped
    deliverer.close()
    assert len((tmp_path / "alerts.jsonl").read_text().splitlines()) == 1
