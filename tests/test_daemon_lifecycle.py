"""The daemon's life cycle as a real process: signals during start-up, one shutdown deadline.

Both failures were seen on a real deployment: a SIGTERM while the GeoIP data loaded killed
the process with the default handler (no drain, no exit 0), and a SIGTERM with tens of
thousands of active flows did not exit within 12 s, so systemd would have SIGKILLed it and
lost them. Each test runs ``python -m netwatch run`` and signals it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from netwatch.testing import pcapgen as g
from tests.test_daemon import DEMO, free_port

HIKVISION_MAC = "04:03:12:00:00:01"  # an IEEE prefix of Hikvision (seeds/camera_vendor_oui.tsv)
FLOWS = 50_000
DEADLINE_S = 15.0


def start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "netwatch", "run", "-c", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=config.parent,
        )


def catches(pid: int, signum: int) -> bool:
    """True once the process has a handler installed for ``signum`` (SigCgt in /proc)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = next(int(line.split()[1], 16) for line in status.splitlines() if line[:7] == "SigCgt:")
    return bool(mask & (1 << (signum - 1)))


def wait_for(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(check) and check():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_during_start_up_is_a_clean_exit(tmp_path: Path, signum: int) -> None:
    config = tmp_path / "netwatch.yaml"
    config.write_text(
        f"capture: {{files: [{DEMO}], loop: true, user: null}}\n"
        f"metrics: {{listen: '127.0.0.1:{free_port()}'}}\n"
        f"state_dir: {tmp_path / 'state'}\n"
        "geoip: {builtin: true}\n"  # start-up unpacks the built-in data, loads the seeds
        "logging: {format: json, level: info}\n"
    )
    log = tmp_path / "daemon.log"
    proc = start(config, log)
    try:
        # the handlers are installed first: signal at once, while the daemon still starts
        # (GeoIP data, seeds, pipeline), or at the latest as its capture begins
        wait_for(lambda: catches(proc.pid, signal.SIGTERM), 30, "the signal handlers")
        proc.send_signal(signum)
        assert proc.wait(20) == 0, log.read_text()[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert "Traceback" not in text, text[-2000:]
    lines = [json.loads(line) for line in text.splitlines()]  # every line is structured
    name = signal.Signals(signum).name
    assert any(line.get("reason") == f"signal {name}" for line in lines), lines


def flood_capture(path: Path) -> None:
    """A camera (Hikvision prefix) sending SYNs to ``FLOWS`` public addresses within a
    second, then a slow trickle for ten minutes, so the flows are still active when the
    daemon is stopped."""
    cam = g.Route.of(HIKVISION_MAC, "10.0.0.9", "02:00:00:00:00:fe", "45.0.0.1")
    t0 = 1_700_000_000_000_000
    with path.open("wb") as out, g.PcapWriter(out) as pcap:
        for i in range(FLOWS):
            dst = bytes([45, (i >> 16) & 0xFF, (i >> 8) & 0xFF, i & 0xFF or 1])
            route = g.Route(cam.src_mac, cam.dst_mac, cam.src_ip, dst)
            syn = g.tcp_frame(route, 40_000 + i % 20_000, 443, seq=1, ack=0, flags=g.TcpFlag.SYN)
            pcap.write(t0 + i * 10, syn)
        quiet = g.Route.of("02:00:00:00:00:01", "10.0.0.50", "02:00:00:00:00:02", "10.0.0.51")
        for s in range(600):
            pcap.write(t0 + (s + 2) * 1_000_000, g.udp_frame(quiet, 5000, 5001, b"tick"))


def metric(port: int, name: str) -> float | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_sigterm_with_50000_active_flows_exits_within_the_deadline(tmp_path: Path) -> None:
    capture = tmp_path / "flood.pcap"
    flood_capture(capture)
    port = free_port()
    config = tmp_path / "netwatch.yaml"
    config.write_text(
        f"capture: {{files: [{capture}], realtime: true, user: null}}\n"
        f"metrics: {{listen: '127.0.0.1:{port}'}}\n"
        f"state_dir: {tmp_path / 'state'}\n"
        f"flow_log: {tmp_path / 'flows.jsonl'}\n"
        f"alert_log: {tmp_path / 'alerts.jsonl'}\n"
        "geoip: {builtin: false}\n"
        "logging: {format: json, level: info}\n"
        f"shutdown_timeout_s: {DEADLINE_S}\n"
        f"sinks:\n  - {{name: log, type: jsonl, path: {tmp_path / 'sink.jsonl'}}}\n"
    )
    log = tmp_path / "daemon.log"
    proc = start(config, log)
    try:
        wait_for(
            lambda: (metric(port, "netwatch_flows_active") or 0) >= FLOWS,
            120,
            f"{FLOWS} active flows",
        )
        stopped = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(DEADLINE_S + 15)
        took = time.monotonic() - stopped
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert rc == 0, log.read_text()[-2000:]
    assert took <= DEADLINE_S + 3.0, f"took {took:.1f} s"  # + interpreter exit
    flows = (tmp_path / "flows.jsonl").read_text().splitlines()
    assert len(flows) >= FLOWS  # every active flow was ended and written
    assert "Traceback" not in log.read_text()
    assert os.path.getsize(tmp_path / "alerts.jsonl") > 0
