"""Live capture end to end: the daemon on one end of a veth pair equals ``netwatch replay``.

A capture is injected with tcpreplay into one end of a veth pair inside a private network
namespace (see :mod:`tests.integration.netns`); ``netwatch run`` captures on the other end
through its TPACKET_V3 ring. Its flow records, alerts and capture counters must equal what
``netwatch replay`` makes of the same file: the same flows (5-tuple, packets, IP bytes,
state, history, service), the same alerts (rule, device, peer), every packet received and
none dropped. Traffic never leaves the namespace.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from netwatch import __version__
from netwatch.cli import main
from tests.integration.netns import Netns, netns_unavailable, veth_namespace
from tests.test_daemon import DEMO, free_port

REASON = netns_unavailable() or (
    None if shutil.which("tcpreplay") else "tcpreplay is not installed (apt-get install tcpreplay)"
)
pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")

FLOW_FIELDS = (
    "proto",
    "service",
    "conn_state",
    "history",
    "orig_pkts",
    "resp_pkts",
    "orig_ip_bytes",
    "resp_ip_bytes",
    "orig_bytes",
    "resp_bytes",
    "missed_bytes",
    "community_id",
    "vlan",
    "resp_name",
)


def flows(path: Path) -> Counter[tuple[Any, ...]]:
    recs = [json.loads(x) for x in path.read_text().splitlines()]
    return Counter(
        (
            r["id.orig_h"],
            r["id.orig_p"],
            r["id.resp_h"],
            r["id.resp_p"],
            *(json.dumps(r.get(k)) for k in FLOW_FIELDS),
        )
        for r in recs
    )


def alerts(path: Path) -> Counter[tuple[str, str, str | None, str | None]]:
    recs = [json.loads(x) for x in path.read_text().splitlines()]
    return Counter((r["rule"], r["device"], r["peer_ip"], r["peer_name"]) for r in recs)


def metric(ns: Netns, port: int, name: str, **labels: str) -> float | None:
    """One sample from the daemon's endpoint inside the namespace."""
    code = (
        "import urllib.request,sys;"
        f"sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:{port}/metrics',"
        "timeout=3).read().decode())"
    )
    try:
        text = ns.run(sys.executable, "-c", code, timeout=10).stdout.decode()
    except subprocess.CalledProcessError:
        return None
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    head = f"{name}{{{want}}} " if labels else f"{name} "
    for line in text.splitlines():
        if line.startswith(head):
            return float(line.rsplit(" ", 1)[1])
    return None


@pytest.fixture
def ns() -> Iterator[Netns]:
    with veth_namespace() as space:
        yield space


@pytest.mark.parametrize("workers", [1, 2])
def test_the_daemon_on_a_veth_equals_replay(ns: Netns, tmp_path: Path, workers: int) -> None:
    base = "geoip: {builtin: false}\n"
    (tmp_path / "replay.yaml").write_text(base)
    assert (
        main(
            [
                "replay",
                str(DEMO),
                "-c",
                str(tmp_path / "replay.yaml"),
                "--flows",
                str(tmp_path / "replay-flows.jsonl"),
                "--alerts",
                str(tmp_path / "replay-alerts.jsonl"),
            ]
        )
        == 0
    )
    port = free_port()
    config = tmp_path / "live.yaml"
    config.write_text(
        base + f"capture: {{interfaces: [{ns.capture}], user: null, ring_mb: 16, "
        f"workers: {workers}}}\n"
        f"metrics: {{listen: '127.0.0.1:{port}'}}\n"
        f"state_dir: {tmp_path / 'state'}\n"
        f"flow_log: {tmp_path / 'live-flows.jsonl'}\n"
        f"sinks:\n  - {{name: log, type: jsonl, path: {tmp_path / 'live-alerts.jsonl'}}}\n"
        "logging: {format: json, level: info}\n"
    )
    log = (tmp_path / "daemon.log").open("wb")
    proc = subprocess.Popen(
        ns.cmd(sys.executable, "-m", "netwatch", "run", "-c", str(config)),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        up = {"interface": ns.capture}
        deadline = time.monotonic() + 30
        while metric(ns, port, "netwatch_capture_up", **up) != 1:
            assert proc.poll() is None and time.monotonic() < deadline, _tail(tmp_path)
            time.sleep(0.2)
        ns.run("tcpreplay", "-q", "-i", ns.inject, "--topspeed", str(DEMO))
        received = "netwatch_capture_received_packets_total"
        deadline = time.monotonic() + 30
        while (metric(ns, port, received, **up) or 0) < 5221:
            assert time.monotonic() < deadline, _tail(tmp_path)
            time.sleep(0.2)
        assert metric(ns, port, received, **up) == 5221
        dropped = "netwatch_capture_dropped_packets_total"
        assert metric(ns, port, dropped, interface=ns.capture, stage="kernel") == 0
        assert metric(ns, port, "netwatch_packets_total") == 5221
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        log.close()
    assert proc.returncode == 0, _tail(tmp_path)
    live, replayed = flows(tmp_path / "live-flows.jsonl"), flows(tmp_path / "replay-flows.jsonl")
    assert sum(replayed.values()) == 36 and live == replayed, (live - replayed, replayed - live)
    expected = alerts(tmp_path / "replay-alerts.jsonl")
    assert sum(expected.values()) == 15
    assert alerts(tmp_path / "live-alerts.jsonl") == expected


def _tail(tmp: Path) -> str:
    path = tmp / "daemon.log"
    return path.read_text()[-3000:] if path.exists() else ""


def test_an_interface_that_goes_away_is_reopened_when_it_returns(ns: Netns, tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "live.yaml"
    config.write_text(
        f"capture: {{interfaces: [{ns.capture}], user: null, ring_mb: 4}}\n"
        f"metrics: {{listen: '127.0.0.1:{port}'}}\n"
        f"state_dir: {tmp_path / 'state'}\n"
        "geoip: {builtin: false}\n"
        "logging: {format: json, level: info}\n"
    )
    log = (tmp_path / "daemon.log").open("wb")
    proc = subprocess.Popen(
        ns.cmd(sys.executable, "-m", "netwatch", "run", "-c", str(config)),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    up = {"interface": ns.capture}
    try:
        _wait(lambda: metric(ns, port, "netwatch_capture_up", **up) == 1, proc, tmp_path)
        ns.run("ip", "link", "set", ns.capture, "down")  # down: counted, the socket stays
        _wait(
            lambda: (metric(ns, port, "netwatch_capture_errors_total", **up) or 0) >= 1,
            proc,
            tmp_path,
        )
        ns.run("ip", "link", "set", ns.capture, "up")
        ns.run("ip", "link", "del", ns.inject)  # removes both ends: the ring is closed
        _wait(lambda: metric(ns, port, "netwatch_capture_up", **up) == 0, proc, tmp_path)
        assert metric(ns, port, "netwatch_build_info", version=__version__) == 1  # still serving
        ns.run("ip", "link", "add", ns.inject, "type", "veth", "peer", "name", ns.capture)
        for link in (ns.inject, ns.capture):
            ns.run("ip", "link", "set", link, "up")
        _wait(lambda: metric(ns, port, "netwatch_capture_up", **up) == 1, proc, tmp_path, 10)
        ns.run("tcpreplay", "-q", "-i", ns.inject, "--topspeed", str(DEMO))
        received = "netwatch_capture_received_packets_total"
        _wait(lambda: (metric(ns, port, received, **up) or 0) >= 5221, proc, tmp_path)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        log.close()
    assert proc.returncode == 0, _tail(tmp_path)
    text = (tmp_path / "daemon.log").read_text()
    assert "is gone; re-opening it when it returns" in text and "capturing on" in text


def _wait(check: Any, proc: subprocess.Popen[bytes], tmp: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert proc.poll() is None, _tail(tmp)
        assert time.monotonic() < deadline, _tail(tmp)
        time.sleep(0.2)
