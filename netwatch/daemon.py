"""``netwatch run``: the daemon around the pipeline (capture files for now; live capture next).

It builds the pipeline from the config, serves Prometheus metrics on ``metrics.listen``
(127.0.0.1:9847 by default), queues every alert in the durable outbox under ``state_dir``
(persisted before any delivery attempt) and drains it into the configured sinks from a
separate thread, so capture never waits on a sink. Alerts are also logged as one line.
The capture source is ``capture.files`` (in order; ``capture.loop`` starts over, each pass
ending its flows, since a pass replays the same packet times);
live interfaces arrive with the live-capture work and are refused with a clear error.

Signals: SIGTERM/SIGINT stop reading, end every flow (flow records and alerts are
written), then deliver what the sinks accept within ``DRAIN_S`` seconds; what is left
stays in the outbox for the next start. Under systemd (``NOTIFY_SOCKET``) READY=1 and
STOPPING=1 are sent. Reloading on SIGHUP, watchdog pings and real-time pacing are not
done yet.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from prometheus_client import CollectorRegistry

from netwatch.alerts.model import Alert
from netwatch.capture.files import open_capture
from netwatch.config import Config
from netwatch.delivery import Deliverer
from netwatch.metrics.collector import (
    AlertCounter,
    CameraTraffic,
    NetwatchCollector,
    camera_resolver,
)
from netwatch.metrics.server import MetricsServer, load_web_config
from netwatch.outbox import Outbox
from netwatch.output.flowlog import JsonLinesWriter
from netwatch.pipeline import Pipeline
from netwatch.sinks import build_sinks

log = logging.getLogger("netwatch.daemon")
alert_log = logging.getLogger("netwatch.alert")

DRAIN_S = 10.0
PUMP_INTERVAL_S = 1.0


class UsageError(Exception):
    """The config asks for something this daemon cannot do (exit 2)."""


def sd_notify(message: str) -> None:
    """Send a systemd notification when running under ``Type=notify`` (else nothing)."""
    target = os.environ.get("NOTIFY_SOCKET")
    if not target:
        return
    address = "\0" + target[1:] if target.startswith("@") else target
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.connect(address)
        sock.sendall(message.encode())


@dataclass
class Daemon:
    """One running sensor: pipeline, metrics, delivery."""

    cfg: Config
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        if self.cfg.capture.interfaces:
            raise UsageError(
                "capture.interfaces: live capture is not available yet; use capture.files"
            )
        if not self.cfg.capture.files:
            raise UsageError("capture.files: nothing to read (set capture.files)")
        self.cfg.state_dir.mkdir(parents=True, exist_ok=True)
        self.deliverer = Deliverer(
            Outbox(self.cfg.state_dir / "outbox.sqlite"), build_sinks(self.cfg.sinks)
        )
        self.flow_log = JsonLinesWriter(self.cfg.flow_log) if self.cfg.flow_log else None
        self.alerts = AlertCounter(self._alert)
        self.traffic = CameraTraffic(None)
        self.pipeline = Pipeline(
            self.cfg, self._record, on_alert=self.alerts, state_dir=self.cfg.state_dir
        )
        self.traffic.resolve = camera_resolver(self.pipeline)
        self.registry = CollectorRegistry()
        self.registry.register(
            NetwatchCollector(self.pipeline, alerts=self.alerts, traffic=self.traffic)
        )
        web = load_web_config(self.cfg.metrics.web_config) if self.cfg.metrics.web_config else None
        listen = self.cfg.metrics.listen
        self.metrics = MetricsServer(self.registry, listen.port, host=listen.host, web=web)
        self._pump_thread = threading.Thread(target=self._pump_loop, daemon=True)

    def _record(self, rec: dict[str, Any]) -> None:
        self.traffic.record(rec)
        if self.flow_log is not None:
            self.flow_log.write(rec)

    def _alert(self, alert: Alert, count: int) -> None:
        alert_log.warning("%s", alert.one_line())
        group = None
        detector = self.pipeline.detector
        if detector is not None:
            device = detector.devices.camera(_packed(alert.device_ip), _mac(alert.device_mac))
            group = device.group if device is not None else None
        self.deliverer.enqueue(alert, count, group)

    def _pump_loop(self) -> None:
        while not self.stop.wait(PUMP_INTERVAL_S):
            self.deliverer.pump()

    def run(self) -> int:
        """Serve until the input ends (without ``capture.loop``) or a stop signal."""
        self.metrics.start()
        log.info("metrics on http://%s:%d/metrics", self.cfg.metrics.listen.host, self.metrics.port)
        self.pipeline.warm_up()
        self._pump_thread.start()
        sd_notify("READY=1\nSTATUS=capturing")
        try:
            while not self.stop.is_set():
                for path in self.cfg.capture.files:
                    if self.stop.is_set():
                        break
                    with open_capture(path) as cap:
                        self.pipeline.run_capture(cap)
                if not self.cfg.capture.loop:
                    break
                # a looped pass replays the same packet times: end its flows first, so
                # passes are not merged into one flow
                self.pipeline.end_pass()
        finally:
            self.shutdown()
        return 0

    def shutdown(self) -> None:
        """End every flow, deliver within DRAIN_S, keep the rest in the outbox."""
        sd_notify("STOPPING=1")
        self.stop.set()
        self.pipeline.finish()
        if self.flow_log is not None:
            self.flow_log.close()
        deadline = time.monotonic() + DRAIN_S
        while time.monotonic() < deadline and any(self.deliverer.outbox.depth().values()):
            if not self.deliverer.pump():
                time.sleep(0.2)
        left = sum(self.deliverer.outbox.depth().values())
        if left:
            log.warning("%d alert deliveries left in the outbox for the next start", left)
        self.deliverer.close()
        self.metrics.close()


def _packed(ip: str) -> bytes:
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    return socket.inet_pton(family, ip)


def _mac(mac: str | None) -> bytes | None:
    return bytes.fromhex(mac.replace(":", "")) if mac else None


def run_daemon(config: Path | None) -> int:
    """The ``netwatch run`` command; raises UsageError/ConfigError for exit 2."""
    cfg = Config.load(config) if config is not None else Config.default()
    daemon = Daemon(cfg)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        daemon.stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return daemon.run()
