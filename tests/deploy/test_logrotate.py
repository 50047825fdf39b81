"""logrotate/netwatch: real ``logrotate -f`` rotates a running daemon's flow and alert logs.

The shipped file is used as it is except for two strings: the log directory
(``/var/log/netwatch`` -> a temporary one) and the ``postrotate`` command (``systemctl
try-reload-or-restart netwatch.service`` -> ``kill -HUP <the daemon>``, which is what
systemd's ``ExecReload=`` sends). The daemon (this checkout, ``python -m netwatch run``)
replays the demo capture in a loop and must go on writing into new files after each
rotation. Skips when the ``logrotate`` binary is absent (Debian package ``logrotate``,
which ``./dev test`` installs).
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "logrotate" / "netwatch"
DEMO = REPO / "pcaps" / "demo" / "camera-site-demo.pcap"
LOG_DIR = "/var/log/netwatch"
POSTROTATE = "systemctl try-reload-or-restart netwatch.service"
LOGROTATE = shutil.which("logrotate") or (
    "/usr/sbin/logrotate" if Path("/usr/sbin/logrotate").exists() else None
)

pytestmark = pytest.mark.skipif(
    LOGROTATE is None, reason="logrotate not installed (apt-get install logrotate)"
)


def logrotate(conf: Path, state: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    assert LOGROTATE is not None
    return subprocess.run(
        [LOGROTATE, *extra, "-s", str(state), str(conf)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def wait_for(what: Callable[[], bool], seconds: float, daemon: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if what():
            return
        assert daemon.poll() is None, daemon.communicate()[1]
        time.sleep(0.2)
    raise AssertionError(f"not within {seconds} s: {what.__doc__}")


def lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """The daemon over the demo capture (looped, 20x), logs in tmp_path/log."""
    logs = tmp_path / "log"
    capture = {"files": [str(DEMO)], "loop": True, "realtime": True, "speed": 20, "user": None}
    cfg = {
        "capture": capture,
        "metrics": {"listen": f"127.0.0.1:{free_port()}"},
        "state_dir": str(tmp_path / "state"),
        "flow_log": str(logs / "flows.jsonl"),
        "sinks": [{"name": "log", "type": "jsonl", "path": str(logs / "alerts.jsonl")}],
        "alerts": {"evaluate_active_s": 10, "group_wait_s": 10},
    }
    config = tmp_path / "netwatch.yaml"
    config.write_text(yaml.safe_dump(cfg))
    env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    proc = subprocess.Popen(
        [sys.executable, "-m", "netwatch", "run", "-c", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=30)
        finally:
            proc.kill()


def test_the_shipped_file_is_valid_as_it_is(tmp_path: Path) -> None:
    """``logrotate -d`` parses it (no log directory here: missingok)."""
    proc = logrotate(SHIPPED, tmp_path / "state", "-d")
    assert proc.returncode == 0, proc.stderr
    assert "error" not in proc.stderr.lower(), proc.stderr


def test_rotation_moves_the_logs_and_the_daemon_reopens_them(
    tmp_path: Path, daemon: subprocess.Popen[str]
) -> None:
    text = SHIPPED.read_text()
    assert text.count(LOG_DIR) == 1 and text.count(POSTROTATE) == 1
    logs = tmp_path / "log"
    conf = tmp_path / "logrotate.conf"
    conf.write_text(text.replace(LOG_DIR, str(logs)).replace(POSTROTATE, f"kill -HUP {daemon.pid}"))
    flows, alerts = logs / "flows.jsonl", logs / "alerts.jsonl"

    def written() -> bool:
        """the daemon writes flow and alert records"""
        return lines(flows) > 0 and lines(alerts) > 0

    wait_for(written, 60, daemon)
    proc = logrotate(conf, tmp_path / "logrotate.state", "-f")
    assert proc.returncode == 0, proc.stderr
    first = logs / "flows.jsonl.1"
    assert lines(first) > 0 and (logs / "alerts.jsonl.1").exists()
    # create: an empty new file with the old one's owner and mode, for a dropped daemon
    assert flows.stat().st_mode == first.stat().st_mode
    assert flows.stat().st_uid == first.stat().st_uid
    for line in first.read_text().splitlines():
        json.loads(line)  # whole records: moved, not cut

    def reopened() -> bool:
        """the daemon writes flow records into a new flows.jsonl"""
        return lines(flows) > 0

    wait_for(reopened, 30, daemon)
    before, now = lines(first), lines(flows)

    def more() -> bool:
        """more flow records reach the new file"""
        return lines(flows) > now

    wait_for(more, 30, daemon)
    assert lines(first) == before  # nothing more went to the rotated file
    # a second rotation: .1 becomes .2 and is compressed (delaycompress spares the newest)
    proc = logrotate(conf, tmp_path / "logrotate.state", "-f")
    assert proc.returncode == 0, proc.stderr
    with gzip.open(logs / "flows.jsonl.2.gz", "rt") as f:
        assert sum(1 for _ in f) == before
    assert lines(logs / "flows.jsonl.1") > 0
