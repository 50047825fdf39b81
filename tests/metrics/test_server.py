"""The metrics endpoint over real HTTP on 127.0.0.1, and the web-config loader."""

from __future__ import annotations

import base64
import errno
import json
import select
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import bcrypt
import pytest
from prometheus_client import CollectorRegistry

from netwatch.metrics.server import (
    AUTH_CHECK_BURST,
    AUTH_CHECKS_PER_S,
    AUTH_FAILURE_TTL_S,
    AuthOutcome,
    BasicAuth,
    HttpEvent,
    HttpStats,
    MetricsBindError,
    MetricsServer,
    WebConfig,
    WebConfigError,
    load_web_config,
)
from tests.metrics.conftest import Run

DEMO = Path(__file__).resolve().parents[2] / "pcaps" / "demo" / "camera-site-demo.pcap"


def get(url: str, auth: str | None = None) -> tuple[int, str, str]:
    req = urllib.request.Request(url)
    if auth is not None:
        req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read().decode()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.headers.get("WWW-Authenticate", ""), err.read().decode()


def test_metrics_and_landing_page(run: Run) -> None:
    with MetricsServer(run.registry, 0, version="0.1.0") as srv:
        base = f"http://127.0.0.1:{srv.port}"
        code, ctype, body = get(base + "/metrics")
        assert code == 200 and ctype.startswith("text/plain; version=0.0.4")
        assert "netwatch_packets_total 14.0" in body
        code, ctype, page = get(base + "/")
        assert code == 200 and ctype.startswith("text/html")
        assert '<a href="/metrics">' in page and "0.1.0" in page
        assert get(base + "/nope")[0] == 404


def test_promtool_check_metrics(run: Run) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not on PATH (Debian: apt-get install prometheus)")
    with MetricsServer(run.registry, 0) as srv:
        _, _, body = get(f"http://127.0.0.1:{srv.port}/metrics")
    done = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, text=True, check=False
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_basic_auth(run: Run, tmp_path: Path) -> None:
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    cfg = tmp_path / "web.yml"
    cfg.write_text(f"basic_auth_users:\n  prom: '{hashed}'\n")
    web = load_web_config(cfg)
    with MetricsServer(run.registry, 0, web=web) as srv:
        url = f"http://127.0.0.1:{srv.port}/metrics"
        assert get(url)[:2] == (401, 'Basic realm="netwatch"')
        assert get(url, "prom:wrong")[0] == 401
        assert get(url, "nobody:s3cret")[0] == 401
        code, _, body = get(url, "prom:s3cret")
        assert code == 200 and "netwatch_packets_total" in body


def test_basic_auth_without_bcrypt_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "bcrypt", None)  # import fails
    cfg = tmp_path / "web.yml"
    cfg.write_text("basic_auth_users:\n  prom: '$2y$10$x'\n")
    with pytest.raises(WebConfigError, match=r"web\.yml: basic_auth_users needs .*bcrypt"):
        load_web_config(cfg)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rate_limit: {}\n", r"rate_limit: not supported"),
        ("tls_server_config: {cert_file: a.crt}\n", r"cert_file and key_file are required"),
        (
            "tls_server_config: {cert_file: a.crt, key_file: a.key}\n",
            r"tls_server_config\.cert_file/key_file: ",
        ),
        ("tls_server_config: {cert_file: a, key_file: b, curve_preferences: []}\n", "curve"),
    ],
)
def test_web_config_errors_name_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    cfg = tmp_path / "web.yml"
    cfg.write_text(text)
    with pytest.raises(WebConfigError, match=message):
        load_web_config(cfg)


def test_empty_web_config_is_plain_http(tmp_path: Path) -> None:
    cfg = tmp_path / "web.yml"
    cfg.write_text("")
    web = load_web_config(cfg)
    assert web.tls is None and not web.users
    assert BasicAuth(web, HttpStats()).check(None) is AuthOutcome.ALLOWED


# -- life cycle, logging and shutdown, in a real process -------------------------------

SERVER_SCRIPT = """
import sqlite3, sys, threading, time
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from netwatch.config.schema import LoggingConfig
from netwatch.logs import configure_logging
from netwatch.metrics.server import MetricsServer

configure_logging(LoggingConfig(format="json", level="debug"))
db = sqlite3.connect(":memory:", check_same_thread=False)  # stands for the daemon's outbox
mode = {"slow": False, "gate": False}
release = threading.Event()


class Outbox:
    def collect(self):
        if mode["slow"]:
            time.sleep(0.3)  # the client is gone by the time the answer is written
        if mode["gate"]:
            print("collecting", flush=True)
            release.wait(10)
        rows = db.execute("select 42").fetchone()[0]  # fails once the daemon closed it
        yield GaugeMetricFamily("demo_outbox_rows", "rows", value=rows)


registry = CollectorRegistry()
registry.register(Outbox())
srv = MetricsServer(registry, 0).bind()
print(srv.port, flush=True)
for line in sys.stdin:
    cmd = line.strip()
    if cmd == "serve":
        srv.serve()
        print("ok", flush=True)
    elif cmd in mode:
        mode[cmd] = not mode[cmd]
        print("ok", flush=True)
    elif cmd == "shutdown":  # the daemon's order: stop serving, then close what it reads
        closer = threading.Thread(target=srv.close, args=(5.0,))
        closer.start()
        while not srv.closing:
            time.sleep(0.01)
        db.close()
        release.set()
        closer.join()
        break
print("closed", flush=True)
"""


class ServerProcess:
    """The script above in its own interpreter; commands on stdin, replies on stdout."""

    def __init__(self, tmp_path: Path) -> None:
        script = tmp_path / "serve.py"
        script.write_text(SERVER_SCRIPT)
        self.proc = subprocess.Popen(
            [sys.executable, str(script)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout
        self.port = int(self.stdout.readline())

    def send(self, command: str) -> None:
        """Send a command; wait (bounded) until the script has applied it, so a scrape
        started afterwards sees it (all but ``shutdown`` answer ``ok``)."""
        self.stdin.write(command + "\n")
        self.stdin.flush()
        if command != "shutdown":
            assert self.readline(10) == "ok"

    def readline(self, timeout_s: float) -> str:
        """One line of the script's stdout, or fail after ``timeout_s`` (never hang)."""
        ready, _, _ = select.select([self.stdout], [], [], timeout_s)
        assert ready, f"no answer from the server script within {timeout_s} s"
        return self.stdout.readline().strip()

    def finish(self) -> tuple[str, str]:
        """Close stdin, wait for the exit; (rest of stdout, stderr)."""
        out, err = self.proc.communicate(timeout=30)
        assert self.proc.returncode == 0, err
        return out, err


def assert_structured(stderr: str) -> list[dict[str, object]]:
    """Every stderr line is one JSON record and none holds a traceback."""
    records = [json.loads(line) for line in stderr.splitlines()]
    assert "Traceback" not in stderr
    return records


def hang_up_mid_request(port: int) -> None:
    """Send a scrape, then reset the connection before the answer is written."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def event_count(body: str, event: str) -> float:
    for line in body.splitlines():
        if line.startswith(f'netwatch_metrics_http_events_total{{event="{event}"}} '):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {event} sample in the scrape")


def test_clients_that_hang_up_are_counted_debug_lines_not_tracebacks(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path)
    server.send("serve")
    server.send("slow")
    for _ in range(5):
        hang_up_mid_request(server.port)
    time.sleep(0.8)  # the server writes to the reset connections
    server.send("slow")
    code, _, body = get(f"http://127.0.0.1:{server.port}/metrics")
    assert code == 200 and "demo_outbox_rows 42.0" in body
    assert event_count(body, "client_gone") == 5
    server.send("shutdown")
    _, err = server.finish()
    gone = [r for r in assert_structured(err) if r["msg"] == "metrics client went away"]
    assert len(gone) == 5 and {r["level"] for r in gone} == {"debug"}


def test_scrape_in_flight_at_shutdown_is_503_and_then_connections_are_refused(
    tmp_path: Path,
) -> None:
    server = ServerProcess(tmp_path)
    server.send("serve")
    server.send("gate")
    answer: list[tuple[int, str, str]] = []
    scrape = threading.Thread(
        target=lambda: answer.append(get(f"http://127.0.0.1:{server.port}/metrics"))
    )
    scrape.start()
    assert server.readline(10) == "collecting"
    server.send("shutdown")  # close() begins, the outbox is closed, the collector fails
    scrape.join(10)
    assert answer and answer[0][0] == 503 and "shutting down" in answer[0][2]
    assert server.readline(10) == "closed"  # close() returned
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()
    _, err = server.finish()
    assert not [r for r in assert_structured(err) if r["level"] in ("warning", "error")]


def test_scrapes_made_before_serve_wait_in_the_backlog_and_are_answered(run: Run) -> None:
    """bind() early, serve() after a long start-up (GeoIP): scrapes made in between are
    queued by the kernel (backlog 128, not 5) and answered once serving starts."""
    srv = MetricsServer(run.registry, 0).bind()
    try:
        waiting = []
        for _ in range(100):  # with a backlog of 5, the 7th connect would hang
            sock = socket.create_connection(("127.0.0.1", srv.port), timeout=2)
            sock.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
            waiting.append(sock)
        srv.serve()
        for sock in waiting:
            with sock:
                sock.settimeout(10)
                head = sock.recv(64)
                assert head.startswith(b"HTTP/1.0 200 "), head
    finally:
        srv.close()


def test_bind_error_names_the_address(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        srv = MetricsServer(CollectorRegistry(), port)
        with pytest.raises(MetricsBindError) as caught:
            srv.bind()
        assert str(caught.value) == f"metrics.listen 127.0.0.1:{port}: Address already in use"
        assert caught.value.errno == errno.EADDRINUSE
        srv.close()
        # the way it failed: `netwatch run` printed `netwatch: : Address already in use`
        cfg = tmp_path / "netwatch.yaml"
        cfg.write_text(
            f"capture: {{files: [{DEMO}], user: null}}\n"
            f"metrics: {{listen: '127.0.0.1:{port}'}}\n"
            f"state_dir: {tmp_path / 'state'}\n"
            "geoip: {builtin: false}\n"
        )
        done = subprocess.run(
            [sys.executable, "-m", "netwatch", "run", "-c", str(cfg)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines()[-1] == (
        f"netwatch: metrics.listen 127.0.0.1:{port}: Address already in use"
    )


# -- basic auth: a bounded cache and a bounded bcrypt budget -----------------------------


def auth_header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def bcrypt_web(tmp_path: Path, rounds: int) -> WebConfig:
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=rounds)).decode()
    cfg = tmp_path / "web.yml"
    cfg.write_text(f"basic_auth_users:\n  prom: '{hashed}'\n")
    return load_web_config(cfg)


def test_parallel_wrong_passwords_do_not_each_cost_a_bcrypt(run: Run, tmp_path: Path) -> None:
    web = bcrypt_web(tmp_path, rounds=10)  # ~60 ms of CPU per check, as deployed
    assert web.check_password is not None
    started = time.process_time()
    web.check_password(b"nope", web.users["prom"])
    one_check = time.process_time() - started
    with MetricsServer(run.registry, 0, web=web) as srv:
        url = f"http://127.0.0.1:{srv.port}/metrics"
        assert get(url, "prom:s3cret")[0] == 200  # Prometheus' credentials, now cached
        attempts = [f"prom:guess{i}" for i in range(40)] + ["prom:same-guess"] * 40
        cpu0, wall0 = time.process_time(), time.monotonic()
        with ThreadPoolExecutor(max_workers=40) as pool:
            codes = list(pool.map(lambda cred: get(url, cred)[0], attempts))
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        assert set(codes) <= {401, 429} and codes.count(401) >= AUTH_CHECK_BURST - 1
        checks = srv.stats.counts()[HttpEvent.PASSWORD_CHECK]
        assert checks <= 1 + AUTH_CHECK_BURST + AUTH_CHECKS_PER_S * wall + 1
        assert cpu < len(attempts) * one_check / 4  # was one bcrypt per request
        code, _, body = get(url, "prom:s3cret")  # still served, from the cache, at once
        assert code == 200 and "netwatch_packets_total" in body
        assert srv.stats.counts()[HttpEvent.PASSWORD_CHECK] == checks


def test_auth_cache_is_bounded_and_forgets_failures() -> None:
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4))
    web = WebConfig(users={"prom": hashed}, check_password=bcrypt.checkpw)
    now = [0.0]
    stats = HttpStats()
    auth = BasicAuth(web, stats, cache_size=8, burst=100, checks_per_s=0.0, clock=lambda: now[0])
    assert auth.check(auth_header("prom", "s3cret")) is AuthOutcome.ALLOWED
    for i in range(20):
        assert auth.check(auth_header("prom", f"guess{i}")) is AuthOutcome.DENIED
    counts = stats.counts()
    assert stats.auth_cache_entries == 8 and counts[HttpEvent.AUTH_CACHE_EVICTED] == 13
    assert counts[HttpEvent.PASSWORD_CHECK] == 21
    assert auth.check(auth_header("prom", "guess19")) is AuthOutcome.DENIED  # cached
    assert auth.check(auth_header("nobody", "s3cret")) is AuthOutcome.DENIED  # same cost
    assert stats.counts()[HttpEvent.PASSWORD_CHECK] == 22
    now[0] += AUTH_FAILURE_TTL_S  # a failure is forgotten, checked again
    assert auth.check(auth_header("prom", "guess19")) is AuthOutcome.DENIED
    assert stats.counts()[HttpEvent.PASSWORD_CHECK] == 23
    # the budget (100 at once, no refill) runs out: a miss is throttled, a hit is not
    for i in range(100):
        auth.check(auth_header("prom", f"more{i}"))
    assert auth.check(auth_header("prom", "s3cret")) is AuthOutcome.THROTTLED  # evicted
    assert stats.counts()[HttpEvent.PASSWORD_CHECK] == 100
