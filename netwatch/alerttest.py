"""``netwatch alert-test``: send one test alert through the configured sinks, now.

It proves the on-call path end to end (URLs, secrets, TLS, firewalls, receivers) without
waiting for a camera to misbehave. The alert is rule ``alert_test``, severity ``info``,
device ``netwatch-alert-test`` on a documentation address (192.0.2.1, RFC 5737), so it can
never be mistaken for a finding, and its summary says it is a test. It bypasses the
sinks' ``rules``/``min_severity``/``groups`` filters and the outbox: each selected sink gets
one synchronous attempt, and the result is printed per sink.

Config read: ``sinks`` (all of them, or the one named with ``--sink``). Exit status: 0
when every selected sink accepted the alert, 1 when one failed, 2 for an unknown sink name.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import TextIO

from netwatch.alerts.model import Alert, Direction, Severity
from netwatch.config import Config
from netwatch.sinks import build_sinks
from netwatch.sinks.base import SinkError

TEST_RULE = "alert_test"
TEST_DEVICE_IP = "192.0.2.1"


def test_alert(now: float, host: str) -> Alert:
    """The test alert (see the module docstring)."""
    return Alert(
        ts=now,
        rule=TEST_RULE,
        severity=Severity.INFO,
        device="netwatch-alert-test",
        device_ip=TEST_DEVICE_IP,
        direction=Direction.LOCAL,
        summary=f"netwatch test alert from {host}: the on-call path works (no action needed)",
        evidence={"test": True, "sensor": host},
    )


def run_alert_test(
    cfg: Config,
    sink_name: str | None,
    out: TextIO,
    clock: Callable[[], float] = time.time,
) -> int:
    """Send the test alert; print one line per sink; return the exit status."""
    configs = [s for s in cfg.sinks if sink_name is None or s.name == sink_name]
    if sink_name is not None and not configs:
        known = ", ".join(s.name for s in cfg.sinks) or "none configured"
        raise SinkError(f"alert-test: no sink named {sink_name!r} (sinks: {known})")
    if not configs:
        out.write("alert-test: no sinks configured; nothing to send\n")
        return 1
    record = test_alert(clock(), socket.gethostname()).record()
    failed = 0
    for sink in build_sinks(configs):
        try:
            result = sink.send([record])
        except Exception as exc:  # report, like the deliverer would
            error = sink.scrub(f"{type(exc).__name__}: {exc}")
            ok = False
        else:
            ok, error = result.ok, result.error
        finally:
            sink.close()
        out.write(f"{sink.name} ({sink.name_}): {'OK' if ok else 'FAILED: ' + error}\n")
        failed += not ok
    return 1 if failed else 0
