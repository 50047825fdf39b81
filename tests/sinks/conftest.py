"""Fixtures for sink tests: a stub HTTP server and an alert record."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from netwatch.alerts.model import Alert, EndReason, IncidentEnd, Severity
from tests.sinks.httpstub import Stub, serve


def make_alert(**kw: Any) -> Alert:
    values: dict[str, Any] = {
        "ts": 1_767_225_600.0,  # 2026-01-01T00:00:00Z
        "rule": "cloud_registration",
        "severity": Severity.HIGH,
        "device": "lobby-1",
        "device_ip": "10.20.0.11",
        "summary": "lobby-1 registered with <Hik-Connect> & co",
        "peer_ip": "47.1.2.3",
        "peer_port": 443,
        "peer_name": "dev.hik-connect.com",
        "peer_country": "CN",
        "evidence": {"endpoint": "hik-connect", "bytes": 1200},
    }
    values.update(kw)
    values["severity"] = Severity(values["severity"])
    return Alert(**values)


@pytest.fixture
def stub() -> Iterator[Stub]:
    with serve() as s:
        yield s


def make_end(**kw: Any) -> IncidentEnd:
    """An incident that ended: first seen at the alert's time, last seen an hour later."""
    alert = make_alert(**kw)
    return IncidentEnd(
        alert=alert,
        ts=alert.ts + 7200.0,
        first_seen=alert.ts,
        last_seen=alert.ts + 3600.0,
        sightings=4,
        severity=Severity.CRITICAL,
        peers=("dev.hik-connect.com", "47.1.2.4"),
        reason=EndReason.QUIET,
    )
