"""The daemon end to end: capture files in, metrics served, alerts delivered via the outbox."""

from __future__ import annotations

import hashlib
import json
import socket
import stat
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from netwatch.alerts.grouping import members
from netwatch.cli import main
from netwatch.config import Config
from netwatch.daemon import Daemon
from netwatch.inventory import restored

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "pcaps" / "demo" / "camera-site-demo.pcap"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def config(tmp_path: Path, port: int, loop: bool = False) -> Config:
    path = tmp_path / "netwatch.yaml"
    path.write_text(
        f"capture: {{files: [{DEMO}], loop: {str(loop).lower()}, user: null}}\n"
        f"metrics: {{listen: '127.0.0.1:{port}'}}\n"
        f"state_dir: {tmp_path / 'state'}\n"
        f"flow_log: {tmp_path / 'flows.jsonl'}\n"
        "geoip: {builtin: false}\n"
        f"sinks:\n  - {{name: log, type: jsonl, path: {tmp_path / 'alerts.jsonl'}}}\n"
    )
    return Config.load(path)


def test_runs_the_capture_and_delivers_every_alert(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    daemon = Daemon(config(tmp_path, free_port()))
    assert daemon.run() == 0
    # files read once: the replay's summary when the input ends
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "files: 1  packets: 5221  bytes: 1848566"
    assert out[1] == "flows: 36 (end_of_input=23, idle_timeout=9, tcp_closed=4)"
    assert any(line.startswith("cameras: 4 (") for line in out)
    assert any(line.startswith("alerts: 8 (") and "notifications" in line for line in out)
    assert "evidence files: write_error=0, written=" in "\n".join(out)
    notes = [json.loads(x) for x in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    alerts = [report for n in notes for report in members(n)]
    # the demo: 8 incidents (one flow, one notification; see tests/golden), in fewer
    # notifications (one per camera and interval)
    assert (
        len(alerts) == 8
        and len(notes) < 8
        and {a["rule"] for a in alerts}
        >= {
            "cloud_registration",
            "rogue_dns",
            "inbound_access",
        }
    )
    assert len((tmp_path / "flows.jsonl").read_text().splitlines()) == 36
    assert (tmp_path / "state" / "outbox.sqlite").is_file()
    # alerts about a flow carry its first packets (evidence.enabled defaults to true)
    evidence = tmp_path / "state" / "evidence"
    assert stat.S_IMODE(evidence.stat().st_mode) == 0o750
    with_flow = [a for a in alerts if a["flow_uid"]]
    assert with_flow and all("evidence_pcap" in a for a in with_flow)
    for a in with_flow:
        path = Path(a["evidence_pcap"])
        assert path.parent == evidence
        assert hashlib.sha256(path.read_bytes()).hexdigest() == a["evidence_sha256"]
    assert len(list(evidence.iterdir())) == len(with_flow)
    # the camera inventory, written at shutdown: the dual-stack camera is one camera
    inventory = json.loads((tmp_path / "state" / "inventory.json").read_text())
    assert inventory["source"] == {"state_dir": str(tmp_path / "state")}
    by_id = {c["id"]: c for c in inventory["cameras"]}
    assert set(by_id) == {"10.20.0.11", "10.20.0.12", "10.20.0.13", "10.30.0.14"}
    assert by_id["10.20.0.12"]["ipv6"] == ["fd00:20::12"]
    assert by_id["10.20.0.11"]["mac_vendor"] and inventory["geoip"]["attribution"] is None
    restarted = restored(tmp_path / "state" / "inventory.json")  # what a restart starts from
    assert set(restarted.cameras) == set(by_id)
    assert Daemon(config(tmp_path, free_port())).run() == 0  # a restart: the same cameras
    again = json.loads((tmp_path / "state" / "inventory.json").read_text())
    assert {c["id"] for c in again["cameras"]} == set(by_id)
    flows = {c["id"]: c["peers"]["countries"][0]["flows"] for c in again["cameras"]}
    assert flows["10.20.0.12"] == 2 * by_id["10.20.0.12"]["peers"]["countries"][0]["flows"]


def test_serves_metrics_while_running_and_stops_on_request(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    daemon = Daemon(config(tmp_path, port, loop=True))
    thread = threading.Thread(target=daemon.run)
    thread.start()
    try:
        body = ""
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                    body = r.read().decode()
                if "netwatch_packets_total" in body:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        assert "netwatch_packets_total" in body and "netwatch_build_info" in body
    finally:
        daemon.stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert "files: " not in capsys.readouterr().out  # looping files: no end, no summary


def test_a_missing_interface_is_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"capture: {{interfaces: [nw-absent0], user: null}}\nstate_dir: {tmp_path}\n")
    assert main(["run", "-c", str(cfg)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "netwatch: capture: nw-absent0: no such interface"


def test_a_bad_capture_filter_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"capture: {{interfaces: [lo], bpf: 'port port'}}\nstate_dir: {tmp_path}\n")
    assert main(["run", "-c", str(cfg)]) == 2
    assert "capture.bpf: " in capsys.readouterr().err
