"""The daemon as systemd runs it: a real process, real signals, a socket as NOTIFY_SOCKET."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from netwatch.alerts.grouping import members
from tests.test_daemon import DEMO, free_port


@dataclass
class Running:
    proc: subprocess.Popen[bytes]
    notify: socket.socket
    port: int
    config: Path
    tmp: Path
    messages: list[str] = field(default_factory=list)

    def read_notify(self, until: str, timeout: float = 20.0) -> list[str]:
        """Collect notifications until one contains ``until``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                msg = self.notify.recv(4096).decode()
            except TimeoutError:
                continue
            self.messages.append(msg)
            if until in msg:
                return self.messages
        raise AssertionError(f"no {until!r} in {self.messages[-5:]}; log: {self.log_tail()}")

    def metric(self, name: str, **labels: str) -> float | None:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
            text = r.read().decode()
        want = ",".join(f'{k}="{v}"' for k, v in labels.items())
        head = f"{name}{{{want}}}" if labels else name
        for line in text.splitlines():
            if line.startswith(head + " "):
                return float(line.rsplit(" ", 1)[1])
        return None

    def log_tail(self) -> str:
        path = self.tmp / "daemon.log"
        return path.read_text()[-2000:] if path.exists() else ""


def write_config(path: Path, tmp: Path, port: int, *, sinks: str, extra: str = "") -> None:
    path.write_text(
        f"capture: {{files: [{DEMO}], loop: true, user: null}}\n"
        f"metrics: {{listen: '127.0.0.1:{port}'}}\n"
        f"state_dir: {tmp / 'state'}\n"
        f"flow_log: {tmp / 'flows.jsonl'}\n"
        "geoip: {builtin: false}\n"
        "logging: {format: json, level: info}\n"
        f"sinks:\n{sinks}{extra}"
    )


def jsonl_sink(tmp: Path, name: str = "log") -> str:
    return f"  - {{name: {name}, type: jsonl, path: {tmp / (name + '.jsonl')}}}\n"


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Running]:
    port = free_port()
    config = tmp_path / "netwatch.yaml"
    write_config(config, tmp_path, port, sinks=jsonl_sink(tmp_path))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.settimeout(0.5)
    env = {
        **os.environ,
        "NOTIFY_SOCKET": str(tmp_path / "notify"),
        "WATCHDOG_USEC": "400000",  # ping every 0.2 s
    }
    env.pop("WATCHDOG_PID", None)
    with (tmp_path / "daemon.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "netwatch", "run", "-c", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp_path,
        )
    running = Running(proc, sock, port, config, tmp_path)
    try:
        yield running
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        sock.close()


def test_ready_watchdog_reload_and_drain(daemon: Running) -> None:
    daemon.read_notify("READY=1")
    start = len(daemon.messages)
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        daemon.read_notify("WATCHDOG=1", timeout=2)
    pings = sum("WATCHDOG=1" in m for m in daemon.messages[start:])
    assert pings >= 4, daemon.messages[start:]  # fed from the capture loop every 0.2 s

    # a broken config is reported and the old one keeps running
    good = daemon.config.read_text()
    daemon.config.write_text(good.replace("loop: true", "loop: maybe"))
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.read_notify("RELOADING=1")
    daemon.read_notify("READY=1")
    assert daemon.metric("netwatch_config_last_reload_successful") == 0
    assert daemon.metric("netwatch_config_reloads_total", result="failure") == 1
    packets = daemon.metric("netwatch_packets_total") or 0
    time.sleep(0.5)
    assert (daemon.metric("netwatch_packets_total") or 0) > packets  # still capturing
    assert daemon.proc.poll() is None
    log = daemon.log_tail()
    assert "reload failed, keeping the running config" in log and "capture.loop" in log

    # a valid new config (one more sink) is applied; the flow log is reopened (logrotate)
    flows = daemon.tmp / "flows.jsonl"
    rotated = daemon.tmp / "flows.jsonl.1"
    flows.rename(rotated)
    write_config(
        daemon.config,
        daemon.tmp,
        daemon.port,
        sinks=jsonl_sink(daemon.tmp) + jsonl_sink(daemon.tmp, "second"),
    )
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.read_notify("RELOADING=1")
    daemon.read_notify("READY=1")
    assert daemon.metric("netwatch_config_last_reload_successful") == 1
    assert daemon.metric("netwatch_config_reloads_total", result="success") == 1
    assert daemon.metric("netwatch_outbox_depth", sink="second") is not None
    deadline = time.monotonic() + 10
    while not (flows.exists() and flows.stat().st_size) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert flows.exists() and rotated.stat().st_size > 0

    # SIGTERM: flows ended and written, alerts delivered, exit 0 well within the drain time
    daemon.proc.send_signal(signal.SIGTERM)
    started = time.monotonic()
    assert daemon.proc.wait(30) == 0
    assert time.monotonic() - started < 15
    assert any("STOPPING=1" in m for m in daemon.read_notify("STOPPING=1"))
    alerts = (daemon.tmp / "log.jsonl").read_text().splitlines()
    reports = [report for a in map(json.loads, alerts) for report in members(a)]
    assert len({(a["rule"], a["device"]) for a in reports}) >= 7
    records = [json.loads(x) for x in flows.read_text().splitlines()]
    assert records and all("uid" in r for r in records)
    assert '"level": "warning"' in log or '"level":"warning"' in log  # JSON log lines


def test_sigterm_with_a_sink_down_keeps_alerts_in_the_outbox(tmp_path: Path) -> None:
    """Drain is bounded: an unreachable sink delays nothing beyond DRAIN_S."""
    port = free_port()
    dead = free_port()  # nothing listens here
    config = tmp_path / "netwatch.yaml"
    sinks = "  - {name: hook, type: webhook, url_env: HOOK}\n"
    write_config(config, tmp_path, port, sinks=sinks)
    config.write_text(config.read_text().replace("loop: true", "loop: false"))
    env = {**os.environ, "HOOK": f"http://127.0.0.1:{dead}/hook"}
    env.pop("NOTIFY_SOCKET", None)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "netwatch", "run", "-c", str(config)],
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert time.monotonic() - started < 40
    assert b"left in the outbox for the next start" in done.stderr
