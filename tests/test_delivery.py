from __future__ import annotations

import json
import logging
import shutil
import sqlite3
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from netwatch.alerts.grouping import DeviceGroups
from netwatch.config.schema import AlertsConfig, SinkConfig
from netwatch.delivery import Deliverer
from netwatch.outbox import Outbox
from netwatch.sinks.alertmanager import AlertmanagerSink
from netwatch.sinks.base import Delivery, Record, Sink, http_post
from netwatch.sinks.jsonl import JsonlSink
from netwatch.sinks.pagerduty import PagerdutySink
from netwatch.sinks.slack import SlackSink
from netwatch.sinks.webhook import WebhookSink
from tests.sinks.conftest import make_alert, make_end
from tests.sinks.httpstub import serve
from tests.sinks.slowpeer import trickler, wait_for


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


# ---------------------------------------------------------------------- issue 9 regressions


def _hook(tmp_path: Path, url: str, name: str = "hook", timeout_s: float = 10.0) -> WebhookSink:
    url_file = tmp_path / f"{name}-url"
    url_file.write_text(url + "/alerts\n")
    cfg = SinkConfig(name=name, type="webhook", url_file=url_file)
    return WebhookSink(cfg, timeout_s=timeout_s)


def _jsonl(tmp_path: Path, name: str = "log") -> JsonlSink:
    return JsonlSink(SinkConfig(name=name, type="jsonl", path=tmp_path / f"{name}.jsonl"))


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def _depth(path: Path) -> dict[str, int]:
    box = Outbox(path)
    try:
        return box.depth()
    finally:
        box.close()


def test_enqueue_never_waits_for_sqlite(tmp_path: Path) -> None:
    """Another connection holds the outbox's write lock: capture keeps enqueueing at once."""
    path = tmp_path / "state" / "outbox.sqlite"
    deliverer = Deliverer(path, [_jsonl(tmp_path)])
    assert deliverer.open() == [tmp_path / "state", path]
    deliverer.start()
    blocker = sqlite3.connect(path, timeout=5)
    blocker.execute("BEGIN EXCLUSIVE")
    started = time.monotonic()
    taken = sum(deliverer.enqueue(make_alert(peer_name=f"p{i}")) for i in range(2000))
    assert taken == 2000 and time.monotonic() - started < 1.0
    time.sleep(0.3)  # the store thread meets the lock (and survives it)
    blocker.rollback()
    blocker.close()
    assert wait_for(lambda: _lines(tmp_path / "log.jsonl") == 2000, timeout=15)
    result = deliverer.shutdown(time.monotonic() + 5)
    assert result.left == 0 and result.stuck == ()


def test_a_trickling_receiver_neither_stalls_another_sink_nor_shutdown(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    with trickler(every_s=5.0) as slow:
        deliverer = Deliverer(path, [_hook(tmp_path, slow.url, timeout_s=30), _jsonl(tmp_path)])
        deliverer.open()
        deliverer.start()
        deliverer.enqueue(make_alert())
        assert wait_for(lambda: slow.connections == 1)
        started = time.monotonic()
        for i in range(3):  # the file sink keeps delivering while the hook is stuck
            deliverer.enqueue(make_alert(peer_name=f"p{i}"))
        assert wait_for(lambda: _lines(tmp_path / "log.jsonl") == 4, timeout=2)
        assert time.monotonic() - started < 2
        started = time.monotonic()
        result = deliverer.shutdown(started + 1.0)
        took = time.monotonic() - started
    assert took < 1.5, f"shutdown took {took:.2f} s"
    assert result.left == 4 and result.stuck == ()
    assert _depth(path) == {"hook": 4}  # kept for the next start


def test_http_post_has_a_total_deadline() -> None:
    with trickler(every_s=0.3) as slow:
        started = time.monotonic()
        result = http_post(slow.url + "/x", b"{}", {}, 1.0)
        took = time.monotonic() - started
    assert result.status == 0 and result.error.startswith("timed out")
    assert took < 1.5


def test_storage_faults_are_survived_counted_and_recovered(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "state"
    path = state / "outbox.sqlite"
    state.mkdir()
    path.write_bytes(b"this is not a database, it was overwritten" * 200)
    deliverer = Deliverer(path, [_jsonl(tmp_path)], reopen_s=0.05)
    deliverer.open()  # the corrupt file is moved aside (kept) and a new one created
    aside = [p for p in state.iterdir() if p.name.startswith("outbox.sqlite.corrupt-")]
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not")
    assert deliverer.health().ok
    deliverer.start()
    deliverer.enqueue(make_alert(peer_name="before"))
    assert wait_for(lambda: _lines(tmp_path / "log.jsonl") == 1)

    with caplog.at_level(logging.ERROR, logger="netwatch.delivery"):
        shutil.rmtree(state)  # the state directory is deleted under the running daemon
        for i in range(5):
            deliverer.enqueue(make_alert(peer_name=f"during{i}"))
        assert wait_for(lambda: _lines(tmp_path / "log.jsonl") == 6)  # still delivered
        assert wait_for(lambda: path.exists() and deliverer.health().ok)  # re-created
    health = deliverer.health()
    assert health.errors >= 1
    faults = [r for r in caplog.records if "outbox storage fault" in r.getMessage()]
    assert 1 <= len(faults) <= 3  # one line per kind, not one per alert
    deliverer.enqueue(make_alert(peer_name="after"))
    assert wait_for(lambda: _lines(tmp_path / "log.jsonl") == 7)
    result = deliverer.shutdown(time.monotonic() + 2)  # never raises
    assert result.left == 0


def test_an_unusable_state_dir_keeps_alerts_in_memory_and_shutdown_does_not_raise(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("a file where the state directory should be")
    path = blocker / "outbox.sqlite"
    with serve(default=500) as hook_server:
        deliverer = Deliverer(path, [_hook(tmp_path, hook_server.url)], reopen_s=0.05)
        assert deliverer.open() == []
        health = deliverer.health()
        assert health.in_memory and not health.ok and health.errors >= 1
        deliverer.start()
        for i in range(3):
            deliverer.enqueue(make_alert(peer_name=f"p{i}"))
        assert wait_for(lambda: len(hook_server.requests) >= 1)  # delivered from memory
        hook_server.default = 200
        assert wait_for(lambda: deliverer.stats["hook"].delivered == 3, timeout=8)
        result = deliverer.shutdown(time.monotonic() + 2)
    assert result.left == 0
    assert blocker.read_text().startswith("a file")  # untouched


def test_a_re_report_during_the_send_of_its_queued_copy_is_delivered(tmp_path: Path) -> None:
    gate = threading.Event()
    got: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.extend(json.loads(body)["alerts"])
            gate.wait(5)  # the first send stays in flight until the re-report is queued
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        deliverer = Deliverer(tmp_path / "outbox.sqlite", [_hook(tmp_path, url)], poll_s=0.05)
        deliverer.open()
        deliverer.start()
        deliverer.enqueue(make_alert(), count=1)
        assert wait_for(lambda: len(got) == 1)  # in flight
        deliverer.enqueue(make_alert(), count=2)  # the same identity, seen again
        assert wait_for(lambda: deliverer.health().rows == 2)  # stored next to it
        gate.set()
        assert wait_for(lambda: len(got) == 2)
        deliverer.shutdown(time.monotonic() + 2)
    finally:
        server.shutdown()
        server.server_close()
    assert [a["annotations"]["count"] for a in got] == ["1", "2"]


@pytest.mark.parametrize("retry_after", ["99999999999", "9" * 400])
def test_a_huge_retry_after_parks_nothing_also_after_restart(
    tmp_path: Path, retry_after: str
) -> None:
    path = tmp_path / "outbox.sqlite"
    with serve() as am:
        am.script.append((429, {"Retry-After": retry_after}))
        box = Outbox(path, rng=lambda: 0.0)
        deliverer = Deliverer(box, [_am(am.url)])
        deliverer.enqueue(make_alert())
        assert deliverer.pump(1000.0) == 0
        deliverer.close()
        again = Deliverer(Outbox(path), [_am(am.url)])  # a restart tries at once...
        am.script.append((429, {"Retry-After": retry_after}))  # ...and is told to wait again
        assert again.pump(1000.0) == 0 and len(am.requests) == 2
        assert again.pump(1299.0) == 0 and len(am.requests) == 2  # capped at 300 s
        assert again.pump(1300.0) == 1
        again.close()


def test_outbox_bound_from_config_drops_lowest_severity_and_counts(tmp_path: Path) -> None:
    alerts = AlertsConfig(outbox_max_rows=100)
    deliverer = Deliverer.from_config(tmp_path, [_jsonl(tmp_path)], alerts)
    deliverer.open()
    deliverer.enqueue(make_alert(severity="critical", peer_name="keep"))
    for i in range(150):
        deliverer.enqueue(make_alert(severity="low", peer_name=f"p{i}"))
    deliverer.store_intake()
    health = deliverer.health()
    assert health.rows == 100 and health.dropped == {"max_rows": 51}
    deliverer.pump(0.0, budget=1000)
    logged = (tmp_path / "log.jsonl").read_text()
    assert '"keep"' in logged and '"p0"' not in logged and '"p149"' in logged
    deliverer.close()


def test_intake_is_bounded_and_counts_what_it_drops(tmp_path: Path) -> None:
    deliverer = Deliverer(tmp_path / "outbox.sqlite", [_jsonl(tmp_path)], intake_max=10)
    taken = [deliverer.enqueue(make_alert(peer_name=f"p{i}")) for i in range(15)]
    assert taken == [1] * 10 + [0] * 5
    assert deliverer.health().dropped == {"intake_full": 5}
    deliverer.close()
    assert _depth(tmp_path / "outbox.sqlite") == {"log": 10}


def test_a_reload_keeps_the_firing_alerts_of_a_rebuilt_alertmanager_sink(tmp_path: Path) -> None:
    with serve() as am:
        deliverer = Deliverer(tmp_path / "outbox.sqlite", [_am(am.url)])
        deliverer.enqueue(make_alert())
        assert deliverer.pump(0.0) == 1
        rebuilt = _am(am.url)
        deliverer.replace_sinks([rebuilt])
        assert len(rebuilt.active) == 1
        rebuilt.lifecycle(resend_s=0.0, resolve_s=1e12)
        deliverer.pump()
        deliverer.close()
        assert len(am.requests) == 2  # re-sent by the new sink
    again = Deliverer(tmp_path / "outbox.sqlite", [_am("http://127.0.0.1:9")])
    again.pump(0.0)  # restores the stored state
    assert len(again.sinks["am"].active) == 1  # type: ignore[attr-defined]
    again.close()


def test_incident_ends_go_through_the_outbox_to_the_sinks_that_take_them(tmp_path: Path) -> None:
    with serve(default=202) as pd, serve() as hook, serve() as chat:
        pd_sink = PagerdutySink(
            SinkConfig(name="pd", type="pagerduty", routing_key_env="K"),
            environ={"K": "k"},
            url=pd.url,
        )
        webhook = WebhookSink(
            SinkConfig(name="hook", type="webhook", url_env="U"), environ={"U": hook.url}
        )
        slack = SlackSink(
            SinkConfig(name="chat", type="slack", url_env="U"), environ={"U": chat.url}
        )
        quiet = SlackSink(
            SinkConfig(name="quiet", type="slack", url_env="U", ended=False),
            environ={"U": chat.url + "/quiet"},
        )
        log_path = tmp_path / "alerts.jsonl"
        log = JsonlSink(SinkConfig(name="log", type="jsonl", path=log_path))
        box = Outbox(tmp_path / "outbox.sqlite")
        deliverer = Deliverer(box, [pd_sink, webhook, slack, quiet, log])
        assert deliverer.enqueue(make_alert()) == 5
        assert deliverer.pump(0.0) == 5
        # the end waits in the durable outbox like any alert, under a key of its own
        assert deliverer.enqueue_ended(make_end()) == 3  # not the quiet Slack, not the log
        assert deliverer.ended == 1
        deliverer.store_intake()
        assert box.depth() == {"pd": 1, "hook": 1, "chat": 1}
        assert deliverer.pump(1.0) == 3
        assert all(deliverer.stats[s].delivered == 2 for s in ("pd", "hook", "chat"))
        trigger, resolve = (r.json() for r in pd.requests)
        assert resolve["event_action"] == "resolve"
        assert resolve["dedup_key"] == trigger["dedup_key"]
        assert hook.requests[1].json()["status"] == "resolved"
        assert "ENDED" in chat.requests[2].json()["text"]
        assert [r.path for r in chat.requests] == ["/", "/quiet", "/"]
        deliverer.close()
    lines = log_path.read_text().splitlines()
    assert len(lines) == 1 and "status" not in json.loads(lines[0])  # one line per alert


def test_an_end_never_merges_into_a_firing_alert_still_queued() -> None:
    box = Outbox(":memory:")
    with serve(default=500) as hook:
        webhook = WebhookSink(
            SinkConfig(name="hook", type="webhook", url_env="U"), environ={"U": hook.url}
        )
        deliverer = Deliverer(box, [webhook])
        deliverer.enqueue(make_alert())
        deliverer.enqueue_ended(make_end())
        deliverer.store_intake()
        assert box.depth() == {"hook": 2}
        deliverer.close()


def _grouped_notification() -> Any:
    """One camera's notification: a registration leading, a rogue resolver grouped."""
    sent: list[Any] = []
    groups = DeviceGroups(lambda a, n: sent.append((a, n)))
    groups.add(make_alert(), 1)
    groups.add(make_alert(rule="rogue_dns", severity="medium", peer_name="dns.example"), 1)
    groups.flush_all()
    ((alert, count),) = sent
    return alert, count


def test_a_sink_filter_applies_to_each_report_a_notification_carries(tmp_path: Path) -> None:
    """A sink that takes only rogue_dns gets the rogue resolver report of a notification
    led by a registration (as a notification of its own); a sink that takes high and above
    gets the registration without the medium report grouped with it; a sink without filters
    gets the notification whole."""
    alert, count = _grouped_notification()
    paths = {name: tmp_path / f"{name}.jsonl" for name in ("dns", "high", "all")}
    sinks = [
        JsonlSink(SinkConfig(name="dns", type="jsonl", path=paths["dns"], rules=("rogue_dns",))),
        JsonlSink(SinkConfig(name="high", type="jsonl", path=paths["high"], min_severity="high")),
        JsonlSink(SinkConfig(name="all", type="jsonl", path=paths["all"])),
    ]
    deliverer = Deliverer(Outbox(":memory:"), sinks)
    assert deliverer.enqueue(alert, count) == 3
    deliverer.pump(0.0)
    deliverer.close()
    got = {name: [json.loads(x) for x in p.read_text().splitlines()] for name, p in paths.items()}
    (dns,) = got["dns"]
    assert dns["rule"] == "rogue_dns" and dns["device"] == "lobby-1"
    assert "grouped" not in dns["evidence"]
    (high,) = got["high"]
    assert high["rule"] == "cloud_registration" and "grouped" not in high["evidence"]
    (whole,) = got["all"]
    assert [g["rule"] for g in whole["evidence"]["grouped"]] == ["rogue_dns"]
