"""A receiver outage across daemon restarts: every alert identity arrives exactly once."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from netwatch.config import Config
from netwatch.daemon import Daemon
from netwatch.outbox import Outbox
from tests.test_daemon import DEMO, free_port

BENIGN = DEMO.parents[1] / "scenarios" / "benign-site.pcap"


@contextmanager
def receiver(port: int) -> Iterator[list[dict[str, Any]]]:
    """A webhook receiver on a fixed loopback port, recording every alert it accepts."""
    got: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.extend(json.loads(body)["alerts"])
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield got
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def run_once(tmp: Path, capture: Path, url_file: Path, drain_s: float) -> Daemon:
    path = tmp / "netwatch.yaml"
    path.write_text(
        f"capture: {{files: [{capture}], user: null}}\n"
        f"metrics: {{listen: '127.0.0.1:{free_port()}'}}\n"
        f"state_dir: {tmp / 'state'}\n"
        "geoip: {builtin: false}\n"
        f"sinks:\n  - {{name: hook, type: webhook, url_file: {url_file}}}\n"
    )
    daemon = Daemon(Config.load(path), path)
    daemon.shutdown_s = drain_s
    assert daemon.run() == 0
    return daemon


def depth(tmp: Path) -> dict[str, int]:
    box = Outbox(tmp / "state" / "outbox.sqlite")
    try:
        return box.depth()
    finally:
        box.close()


def test_outage_and_restarts_deliver_each_identity_once(tmp_path: Path) -> None:
    port = free_port()
    url_file = tmp_path / "hook-url"
    url_file.write_text(f"http://127.0.0.1:{port}/alerts\n")
    url_file.chmod(0o600)

    # the receiver is down: the first run queues its alerts and keeps them at exit
    first = run_once(tmp_path, DEMO, url_file, drain_s=0.5)
    emitted = first.alerts.counts
    identities = sum(emitted.values())
    assert first.pipeline is not None and first.pipeline.notify is not None
    notifications = first.pipeline.notify.notifications
    # each camera's notifications (carrying every incident's alert), and each incident's end
    # (the capture file was read to its end)
    assert identities == 8 and notifications < identities
    assert depth(tmp_path) == {"hook": notifications + identities}

    # a restart that sees the same alerts again, still down: the queue does not grow
    run_once(tmp_path, DEMO, url_file, drain_s=0.5)
    assert depth(tmp_path) == {"hook": notifications + identities}

    # the receiver is back; a third start (a capture without alerts) drains the outbox
    with receiver(port) as got:
        third = run_once(tmp_path, BENIGN, url_file, drain_s=10)
    assert third.alerts.counts == {}
    assert depth(tmp_path) == {}
    for status in ("firing", "resolved"):
        sent = [a for a in got if a["status"] == status]
        per_identity = Counter(
            (a["labels"]["alertname"], a["labels"]["device"], a["labels"].get("peer")) for a in sent
        )
        assert len(per_identity) == identities and set(per_identity.values()) == {1}
    firing = [a for a in got if a["status"] == "firing"]
    assert {a["annotations"]["count"] for a in firing} == {"2"}  # seen in both runs


FULL_DISK_CHILD = """
import json, resource, signal, sys, time
from pathlib import Path
from netwatch.config.schema import SinkConfig
from netwatch.delivery import Deliverer
from netwatch.sinks.webhook import WebhookSink
from tests.sinks.conftest import make_alert

state, url_file = Path(sys.argv[1]), Path(sys.argv[2])
sink = WebhookSink(SinkConfig(name="hook", type="webhook", url_file=url_file), timeout_s=5)
deliverer = Deliverer(state / "outbox.sqlite", [sink], reopen_s=0.2, poll_s=0.1)
deliverer.open()
deliverer.start()
# the file system is "full": no file of this process may grow past a few KiB more
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
limit = (state / "outbox.sqlite").stat().st_size + 4096
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
for i in range(200):
    deliverer.enqueue(make_alert(peer_name=f"p{i}.example", summary="x" * 2000))
end = time.monotonic() + 20
while time.monotonic() < end and deliverer.stats["hook"].delivered < 200:
    time.sleep(0.05)
health = deliverer.health()
result = deliverer.shutdown(time.monotonic() + 3)
print(json.dumps({"errors": health.errors, "delivered": deliverer.stats["hook"].delivered,
                  "left": result.left}))
"""


def test_a_full_disk_under_the_outbox_is_survived_and_nothing_is_lost(tmp_path: Path) -> None:
    """A real process whose outbox file cannot grow (RLIMIT_FSIZE: EFBIG, as a full disk
    fails writes): it keeps running, delivers every alert from memory and exits cleanly."""
    state = tmp_path / "state"
    port = free_port()
    url_file = tmp_path / "hook-url"
    url_file.write_text(f"http://127.0.0.1:{port}/alerts\n")
    with receiver(port) as got:
        proc = subprocess.run(
            [sys.executable, "-c", FULL_DISK_CHILD, str(state), str(url_file)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.splitlines()[-1])
    assert report["errors"] >= 1 and report["delivered"] == 200 and report["left"] == 0
    peers = Counter(a["labels"]["peer"] for a in got)
    assert len(peers) == 200
    assert "Traceback" not in proc.stderr
    assert "outbox storage fault" in proc.stderr or "outbox storage fault" in proc.stdout
