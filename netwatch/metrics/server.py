"""Serve ``/metrics`` (and a landing page at ``/``) from a background thread.

:class:`MetricsServer` serves one injected :class:`~prometheus_client.CollectorRegistry` on
``host:port`` (default 127.0.0.1). ``/metrics`` negotiates the text or OpenMetrics format
from ``Accept``; ``/`` is an HTML page linking to it; anything else is 404.

Life cycle (what the daemon calls, in order): the constructor has no side effect besides
registering the server's own counters on the registry; :meth:`MetricsServer.bind` opens
the listening socket (as root, before the privilege drop; a failure is a
:class:`MetricsBindError` naming ``metrics.listen host:port``); :meth:`MetricsServer.serve`
starts answering from a daemon thread (connections made between the two wait in the
listen backlog); :meth:`MetricsServer.close` stops accepting first, answers 503 to any
request still in flight whose collection fails, and waits (bounded) for them.

An optional exporter-toolkit ``web-config.yml`` (:func:`load_web_config`) adds TLS and
basic auth. Supported keys: ``tls_server_config.{cert_file, key_file, client_ca_file,
client_auth_type (NoClientCert | VerifyClientCertIfGiven | RequireAndVerifyClientCert),
min_version (TLS12 | TLS13)}`` and ``basic_auth_users: {user: bcrypt hash}``. Relative
paths are relative to the file. Any other key is an error naming the file and key.

Basic auth (:class:`BasicAuth`) caches verdicts as exporter-toolkit does: by a keyed hash
of user, stored hash and password (an HMAC with a per-process random key, so the cache
holds no password), at most :data:`AUTH_CACHE_SIZE` entries, least recently used evicted.
A success stays cached until evicted, a failure for :data:`AUTH_FAILURE_TTL_S`. Only a
cache miss runs bcrypt (tens of ms of CPU): one check at a time, and at most
:data:`AUTH_CHECK_BURST` at once then :data:`AUTH_CHECKS_PER_S` per second; a miss over
that budget is answered 429 without running bcrypt.

Bounds: listen backlog :data:`LISTEN_BACKLOG`; at most :data:`MAX_CONNECTIONS` connections
served at once (one thread each: the accept loop waits up to :data:`SLOT_WAIT_S` for a free
one, so a burst queues in the backlog, then closes the connection); a client may stall a
connection :data:`CLIENT_TIMEOUT_S`. Each is counted in ``netwatch_metrics_http_events_total``
(label ``event``, see :class:`HttpEvent`).

Logging: every line goes through :mod:`logging` (structured by :mod:`netwatch.logs`);
http.server never writes to stderr. A client that goes away mid-request, a timeout or a
failed TLS handshake is a debug line and a counted event, never a traceback.

Known limits: the web-config file is read once at start (no certificate rotation without
restart, unlike the Go toolkit, which re-reads it per request); ``max_version``,
``cipher_suites``, ``curve_preferences``, ``client_allowed_sans``, ``http_server_config``
and ``rate_limit`` are not supported. Basic auth needs the ``bcrypt`` package, imported
only when ``basic_auth_users`` is set. Requests are answered one per connection
(HTTP/1.0, no keep-alive).
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import html
import importlib
import logging
import secrets
import socket
import socketserver
import ssl
import struct
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
REALM = "netwatch"
LISTEN_BACKLOG = 128  # connections the kernel queues before the server accepts them
MAX_CONNECTIONS = 64  # connections served at once (one thread each)
SLOT_WAIT_S = 1.0  # the accept loop waits this long for a free slot, then closes (counted)
CLIENT_TIMEOUT_S = 10.0  # seconds a client may stall a connection (and a TLS handshake)
POLL_INTERVAL_S = 0.25  # how often the accept loop checks for close()
CLOSE_WAIT_S = 2.0  # close() waits this long at most for requests in flight
AUTH_CACHE_SIZE = 256  # cached basic-auth verdicts
AUTH_FAILURE_TTL_S = 60.0  # a cached failure is forgotten after this
AUTH_CHECK_BURST = 4  # bcrypt checks that may run back to back...
AUTH_CHECKS_PER_S = 2.0  # ...then this many per second (cache misses over it get 429)
METRICS_LISTEN = "metrics.listen"  # the config key named by bind errors

_TLS_KEYS = {"cert_file", "key_file", "client_ca_file", "client_auth_type", "min_version"}
_CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
_TLS_VERSIONS = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
# A client that went away or stalled: a debug line, never a traceback.
_CLIENT_GONE = (ConnectionError, TimeoutError, ssl.SSLError)

CheckPassword = Callable[[bytes, bytes], bool]


class WebConfigError(Exception):
    """The web config file cannot be used; the message names the file and key."""


class MetricsBindError(OSError):
    """The listening socket cannot be opened. An :class:`OSError` whose ``filename`` is
    ``metrics.listen HOST:PORT``, so ``str()`` and the CLI's OSError line both read
    ``metrics.listen 127.0.0.1:9847: Address already in use``."""

    def __str__(self) -> str:
        return f"{self.filename}: {self.strerror}"


@dataclass(frozen=True)
class WebConfig:
    """What a web-config file asks for: a server TLS context and basic-auth users."""

    tls: ssl.SSLContext | None = None
    users: Mapping[str, bytes] = field(default_factory=dict)  # user -> bcrypt hash
    check_password: CheckPassword | None = None  # bcrypt.checkpw when users are set


class HttpEvent(enum.StrEnum):
    """What the server counts (the ``event`` label of ``netwatch_metrics_http_events_total``)."""

    CLIENT_GONE = "client_gone"  # disconnected or stalled mid-request
    TLS_HANDSHAKE_FAILED = "tls_handshake_failed"
    CONNECTION_REFUSED = "connection_refused"  # over MAX_CONNECTIONS
    SHUTTING_DOWN = "shutting_down"  # answered 503 during close()
    COLLECTION_FAILED = "collection_failed"  # a collector raised: 500
    HANDLER_ERROR = "handler_error"  # any other error in a request
    AUTH_DENIED = "auth_denied"  # 401
    AUTH_THROTTLED = "auth_throttled"  # 429: over the bcrypt budget
    AUTH_CACHE_HIT = "auth_cache_hit"
    AUTH_CACHE_EVICTED = "auth_cache_evicted"
    PASSWORD_CHECK = "password_check"  # one bcrypt run


class HttpStats:
    """Thread-safe event counters of one server (read by :class:`HttpStatsCollector`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(HttpEvent, 0)
        self.auth_cache_entries = 0

    def add(self, event: HttpEvent) -> None:
        """Count one ``event``."""
        with self._lock:
            self._counts[event] += 1

    def counts(self) -> dict[HttpEvent, int]:
        """A copy of every counter (zeros included)."""
        with self._lock:
            return dict(self._counts)


class HttpStatsCollector(Collector):
    """``netwatch_metrics_http_events_total{event}`` and the auth cache size, per scrape."""

    def __init__(self, stats: HttpStats) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        events = CounterMetricFamily(
            "netwatch_metrics_http_events",
            "Events of the metrics endpoint: clients gone, refused, throttled, auth outcomes.",
            labels=["event"],
        )
        for event, count in self._stats.counts().items():
            events.add_metric([event.value], count)
        yield events
        yield GaugeMetricFamily(
            "netwatch_metrics_http_auth_cache_entries",
            "Basic-auth verdicts cached by the metrics endpoint.",
            value=self._stats.auth_cache_entries,
        )


class AuthOutcome(enum.Enum):
    """What :meth:`BasicAuth.check` decided."""

    ALLOWED = enum.auto()
    DENIED = enum.auto()  # 401
    THROTTLED = enum.auto()  # 429: a password check was needed, over the budget


class _Verdict(NamedTuple):
    ok: bool
    expires: float  # monotonic seconds; inf for a success


class _CheckBudget:
    """A token bucket for bcrypt runs: ``burst`` back to back, then ``per_s`` per second."""

    def __init__(self, burst: int, per_s: float, clock: Callable[[], float]) -> None:
        self._burst, self._per_s, self._clock = float(burst), per_s, clock
        self._tokens = float(burst)
        self._at = clock()
        self._lock = threading.Lock()

    def take(self) -> bool:
        """Spend one token; False (nothing spent) when none is left."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self._burst, self._tokens + (now - self._at) * self._per_s)
            self._at = now
            if self._tokens < 1.0:
                return False
            self._tokens -= 1.0
            return True


class BasicAuth:
    """Checks ``Authorization: Basic`` headers against bcrypt hashes, with a bounded cache
    of verdicts and a bounded budget of bcrypt runs (see the module notes)."""

    def __init__(
        self,
        web: WebConfig,
        stats: HttpStats,
        *,
        cache_size: int = AUTH_CACHE_SIZE,
        failure_ttl_s: float = AUTH_FAILURE_TTL_S,
        burst: int = AUTH_CHECK_BURST,
        checks_per_s: float = AUTH_CHECKS_PER_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._users = dict(web.users)
        self._check = web.check_password
        self._stats = stats
        self._size, self._failure_ttl_s, self._clock = cache_size, failure_ttl_s, clock
        self._budget = _CheckBudget(burst, per_s=checks_per_s, clock=clock)
        self._key = secrets.token_bytes(32)  # the cache keys reveal nothing outside this run
        self._cache: OrderedDict[bytes, _Verdict] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._bcrypt_lock = threading.Lock()  # one bcrypt run at a time, as the toolkit does

    @property
    def enabled(self) -> bool:
        """True when users are configured (else every request is allowed)."""
        return bool(self._users)

    def check(self, header: str | None) -> AuthOutcome:
        """The outcome for one request's ``Authorization`` header."""
        if not self._users:
            return AuthOutcome.ALLOWED
        creds = _basic_credentials(header)
        if creds is None or self._check is None:
            return AuthOutcome.DENIED
        user, password = creds
        stored = self._users.get(user)
        # an unknown user costs the same bcrypt run, so timing does not tell which exist
        hashed = stored if stored is not None else next(iter(self._users.values()))
        key = self._cache_key(user, hashed, password)
        cached = self._cached(key)
        if cached is None:
            if not self._budget.take():
                return AuthOutcome.THROTTLED
            cached = self._verify(key, hashed, password)
        return AuthOutcome.ALLOWED if cached and stored is not None else AuthOutcome.DENIED

    def _cache_key(self, user: str, hashed: bytes, password: bytes) -> bytes:
        mac = hmac.new(self._key, digestmod=hashlib.sha256)
        for part in (user.encode(), hashed, password):
            mac.update(struct.pack("!I", len(part)))
            mac.update(part)
        return mac.digest()

    def _cached(self, key: bytes) -> bool | None:
        with self._cache_lock:
            verdict = self._cache.get(key)
            if verdict is None:
                return None
            if verdict.expires <= self._clock():
                del self._cache[key]
                self._stats.auth_cache_entries = len(self._cache)
                return None
            self._cache.move_to_end(key)
        self._stats.add(HttpEvent.AUTH_CACHE_HIT)
        return verdict.ok

    def _verify(self, key: bytes, hashed: bytes, password: bytes) -> bool:
        assert self._check is not None
        with self._bcrypt_lock:
            cached = self._cached(key)  # another thread may have checked the same meanwhile
            if cached is not None:
                return cached
            self._stats.add(HttpEvent.PASSWORD_CHECK)
            try:
                ok = self._check(password, hashed)
            except ValueError:  # malformed hash
                ok = False
            self._remember(key, ok)
        return ok

    def _remember(self, key: bytes, ok: bool) -> None:
        expires = float("inf") if ok else self._clock() + self._failure_ttl_s
        with self._cache_lock:
            self._cache[key] = _Verdict(ok, expires)
            self._cache.move_to_end(key)
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)
                self._stats.add(HttpEvent.AUTH_CACHE_EVICTED)
            self._stats.auth_cache_entries = len(self._cache)


def _basic_credentials(header: str | None) -> tuple[str, bytes] | None:
    """(user, password) of a ``Basic`` Authorization header, or None if it is not one."""
    if header is None or not header.startswith("Basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:], validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password.encode()) if sep else None


def _import_checkpw(path: Path) -> CheckPassword:
    try:
        bcrypt = importlib.import_module("bcrypt")
    except ImportError as exc:
        raise WebConfigError(
            f"{path}: basic_auth_users needs the 'bcrypt' package (pip install bcrypt)"
        ) from exc
    check: CheckPassword = bcrypt.checkpw
    return check


def _tls_context(path: Path, tls: Any) -> ssl.SSLContext:
    where = f"{path}: tls_server_config"
    if not isinstance(tls, dict):
        raise WebConfigError(f"{where}: expected a mapping")
    unknown = sorted(set(tls) - _TLS_KEYS)
    if unknown:
        raise WebConfigError(f"{where}.{unknown[0]}: not supported")
    if not tls.get("cert_file") or not tls.get("key_file"):
        raise WebConfigError(f"{where}: cert_file and key_file are required")
    base = path.parent
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    version = tls.get("min_version", "TLS12")
    if version not in _TLS_VERSIONS:
        raise WebConfigError(f"{where}.min_version: {version!r} is not one of TLS12, TLS13")
    ctx.minimum_version = _TLS_VERSIONS[version]
    try:
        ctx.load_cert_chain(base / str(tls["cert_file"]), base / str(tls["key_file"]))
    except (OSError, ssl.SSLError) as exc:
        raise WebConfigError(f"{where}.cert_file/key_file: {exc}") from exc
    auth = tls.get("client_auth_type", "NoClientCert")
    if auth not in _CLIENT_AUTH:
        raise WebConfigError(
            f"{where}.client_auth_type: {auth!r} is not one of {', '.join(_CLIENT_AUTH)}"
        )
    ca = tls.get("client_ca_file")
    if auth != "NoClientCert" and not ca:
        raise WebConfigError(f"{where}.client_ca_file: required by {auth}")
    if ca:
        try:
            ctx.load_verify_locations(base / str(ca))
        except (OSError, ssl.SSLError) as exc:
            raise WebConfigError(f"{where}.client_ca_file: {exc}") from exc
    ctx.verify_mode = _CLIENT_AUTH[auth]
    return ctx


def load_web_config(path: str | Path) -> WebConfig:
    """Read an exporter-toolkit web-config file; raises :class:`WebConfigError`."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise WebConfigError(f"{path}: {exc}") from exc
    if doc is None:
        return WebConfig()
    if not isinstance(doc, dict):
        raise WebConfigError(f"{path}: expected a mapping at the top level")
    unknown = sorted(set(doc) - {"tls_server_config", "basic_auth_users"})
    if unknown:
        raise WebConfigError(f"{path}: {unknown[0]}: not supported")
    tls = _tls_context(path, doc["tls_server_config"]) if doc.get("tls_server_config") else None
    users_doc = doc.get("basic_auth_users") or {}
    if not isinstance(users_doc, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in users_doc.items()
    ):
        raise WebConfigError(f"{path}: basic_auth_users: expected {{user: bcrypt hash}}")
    users = {k: v.encode() for k, v in users_doc.items()}
    check = _import_checkpw(path) if users else None
    return WebConfig(tls=tls, users=users, check_password=check)


LANDING_PAGE = """<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>netwatch</title></head>
<body>
<h1>netwatch</h1>
<p>Passive IP-camera traffic monitor{version}.</p>
<p><a href="/metrics">Metrics</a></p>
</body>
</html>
"""

_TEXT = "text/plain; charset=utf-8"


@dataclass(frozen=True)
class _App:
    """What the request handlers share: the registry, auth, page, counters and state."""

    registry: CollectorRegistry
    auth: BasicAuth
    page: bytes
    stats: HttpStats
    closing: threading.Event


def _client(address: Any) -> str:
    """``host:port`` of a client address (for log fields)."""
    try:
        host, port = address[0], address[1]
    except (TypeError, IndexError):
        return str(address)
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def _client_gone(stats: HttpStats, address: Any, exc: BaseException) -> None:
    stats.add(HttpEvent.CLIENT_GONE)
    log.debug(
        "metrics client went away",
        extra={"fields": {"client": _client(address), "error": type(exc).__name__}},
    )


class _Handler(BaseHTTPRequestHandler):
    """One request; errors and client disconnects go to :mod:`logging`, never stderr."""

    server: _Server
    server_version = "netwatch"
    timeout = CLIENT_TIMEOUT_S

    def handle(self) -> None:
        try:
            super().handle()
        except _CLIENT_GONE as exc:
            _client_gone(self.server.app.stats, self.client_address, exc)

    def do_GET(self) -> None:
        app = self.server.app
        if app.closing.is_set():
            self._shutting_down()
            return
        if not self._authorized(app):
            return
        route = self.path.split("?", 1)[0]
        if route == "/metrics":
            self._metrics(app)
        elif route == "/":
            self._send(200, app.page, "text/html; charset=utf-8")
        else:
            self._send(404, b"Not found\n", _TEXT)

    def _authorized(self, app: _App) -> bool:
        outcome = app.auth.check(self.headers.get("Authorization"))
        if outcome is AuthOutcome.ALLOWED:
            return True
        if outcome is AuthOutcome.THROTTLED:
            app.stats.add(HttpEvent.AUTH_THROTTLED)
            self._send(429, b"Too many password checks\n", _TEXT, {"Retry-After": "1"})
        else:
            app.stats.add(HttpEvent.AUTH_DENIED)
            self._send(
                401, b"Unauthorized\n", _TEXT, {"WWW-Authenticate": f'Basic realm="{REALM}"'}
            )
        return False

    def _metrics(self, app: _App) -> None:
        encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
        try:
            body = encoder(app.registry)
        except Exception:
            if app.closing.is_set():  # the daemon is closing what the collectors read
                self._shutting_down()
                return
            app.stats.add(HttpEvent.COLLECTION_FAILED)  # a broken collector: 5xx
            log.exception("metrics collection failed")
            self._send(500, b"metrics collection failed\n", _TEXT)
            return
        self._send(200, body, content_type)

    def _shutting_down(self) -> None:
        self.server.app.stats.add(HttpEvent.SHUTTING_DOWN)
        self._send(503, b"netwatch is shutting down\n", _TEXT, {"Connection": "close"})

    def _send(
        self, code: int, body: bytes, ctype: str, headers: Mapping[str, str] | None = None
    ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """No access log: one scrape every few seconds is not worth a line."""

    def log_error(self, format: str, *args: Any) -> None:
        """Malformed requests and timeouts: a debug line."""
        log.debug(
            "metrics request error: " + format,
            *args,
            extra={"fields": {"client": _client(self.client_address)}},
        )


class _Server(ThreadingHTTPServer):
    """The accept loop: a bounded number of connection threads, TLS wrapped in each
    connection's thread (a slow handshake never blocks accepting), no stderr output."""

    daemon_threads = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, address: tuple[str, int], app: _App, tls: ssl.SSLContext | None) -> None:
        self.app = app
        self.tls = tls
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._active = 0
        self._idle = threading.Condition()
        super().__init__(address, _Handler, bind_and_activate=False)

    def server_bind(self) -> None:
        """Bind without http.server's reverse DNS lookup of the host (``getfqdn``)."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(timeout=SLOT_WAIT_S):
            self.app.stats.add(HttpEvent.CONNECTION_REFUSED)
            log.debug(
                "metrics connection closed: %d connections already served",
                MAX_CONNECTIONS,
                extra={"fields": {"client": _client(client_address)}},
            )
            self.shutdown_request(request)
            return
        with self._idle:
            self._active += 1
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._done()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._done()

    def _done(self) -> None:
        self._slots.release()
        with self._idle:
            self._active -= 1
            self._idle.notify_all()

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no connection is being served; False when ``timeout_s`` ran out."""
        with self._idle:
            return self._idle.wait_for(lambda: self._active == 0, timeout_s)

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.tls is not None:
            request.settimeout(CLIENT_TIMEOUT_S)
            try:
                request = self.tls.wrap_socket(request, server_side=True)
            except (OSError, ssl.SSLError) as exc:
                self.app.stats.add(HttpEvent.TLS_HANDSHAKE_FAILED)
                log.debug(
                    "metrics TLS handshake failed",
                    extra={"fields": {"client": _client(client_address), "error": str(exc)}},
                )
                return
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """An exception escaped a request: a log line (a traceback field only when it is
        not a client going away), never http.server's traceback on stderr."""
        exc = sys.exc_info()[1]
        if isinstance(exc, _CLIENT_GONE):
            _client_gone(self.app.stats, client_address, exc)
            return
        self.app.stats.add(HttpEvent.HANDLER_ERROR)
        log.error(
            "metrics request failed",
            exc_info=True,
            extra={"fields": {"client": _client(client_address)}},
        )


class _State(enum.Enum):
    NEW = enum.auto()
    BOUND = enum.auto()
    SERVING = enum.auto()
    CLOSED = enum.auto()


class MetricsServer:
    """The metrics endpoint on ``host:port`` (``port=0``: an ephemeral port, see
    :attr:`port`). Build, :meth:`bind`, :meth:`serve`, :meth:`close` (see the module notes);
    :meth:`start` is bind-if-needed then serve, and the context manager starts and closes.

    Registers :class:`HttpStatsCollector` (its own counters) on ``registry``.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        port: int,
        host: str = DEFAULT_HOST,
        *,
        web: WebConfig | None = None,
        version: str = "",
    ) -> None:
        web = web or WebConfig()
        self.host, self._port = host, port
        self.stats = HttpStats()
        page = LANDING_PAGE.format(version=f" {html.escape(version)}" if version else "")
        self._app = _App(
            registry, BasicAuth(web, self.stats), page.encode(), self.stats, threading.Event()
        )
        self._tls = web.tls
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._state = _State.NEW
        self._lock = threading.Lock()
        registry.register(HttpStatsCollector(self.stats))

    @property
    def listen(self) -> str:
        """``host:port`` as configured (IPv6 hosts in brackets), for messages."""
        return f"[{self.host}]:{self._port}" if ":" in self.host else f"{self.host}:{self._port}"

    @property
    def closing(self) -> bool:
        """True once :meth:`close` has begun (requests are then answered 503)."""
        return self._app.closing.is_set()

    @property
    def port(self) -> int:
        """The port actually bound (the configured one before :meth:`bind`)."""
        return int(self._httpd.server_address[1]) if self._httpd is not None else self._port

    def bind(self) -> MetricsServer:
        """Open the listening socket (connections queue until :meth:`serve`); returns self.

        Raises :class:`MetricsBindError` naming ``metrics.listen host:port``. Call it once,
        while the process may still bind privileged ports.
        """
        with self._lock:
            if self._state is not _State.NEW:
                raise RuntimeError(f"metrics server already {self._state.name.lower()}")
            httpd = _Server((self.host, self._port), self._app, self._tls)
            try:
                httpd.server_bind()
                httpd.server_activate()
            except OSError as exc:
                httpd.server_close()
                raise MetricsBindError(
                    exc.errno, exc.strerror or str(exc), f"{METRICS_LISTEN} {self.listen}"
                ) from exc
            self._httpd, self._state = httpd, _State.BOUND
        return self

    def serve(self) -> MetricsServer:
        """Start answering from a daemon thread (binding first if needed); returns self."""
        if self._state is _State.NEW:
            self.bind()
        with self._lock:
            if self._state is not _State.BOUND or self._httpd is None:
                raise RuntimeError(f"metrics server is {self._state.name.lower()}, not bound")
            self._thread = threading.Thread(
                target=self._serve_loop, args=(self._httpd,), name="netwatch-metrics", daemon=True
            )
            self._thread.start()
            self._state = _State.SERVING
        return self

    start = serve

    def _serve_loop(self, httpd: _Server) -> None:
        """The accept loop; should it ever fail, a structured error line, not a thread
        traceback on stderr."""
        try:
            httpd.serve_forever(POLL_INTERVAL_S)
        except Exception:
            log.exception("metrics server stopped", extra={"fields": {"listen": self.listen}})

    def close(self, timeout_s: float = CLOSE_WAIT_S) -> None:
        """Stop accepting and release the socket, then wait up to ``timeout_s`` for the
        requests in flight (each answers 503 if its collection fails meanwhile).
        Idempotent; safe in any state."""
        self._app.closing.set()
        with self._lock:
            httpd, thread, state = self._httpd, self._thread, self._state
            self._state = _State.CLOSED
        if httpd is None or state is _State.CLOSED:
            return
        if thread is not None:
            httpd.shutdown()  # the accept loop ends within POLL_INTERVAL_S
            thread.join()
        httpd.server_close()  # new connections are refused from here on
        if not httpd.wait_idle(timeout_s):
            log.warning(
                "metrics requests still in flight at close",
                extra={"fields": {"listen": self.listen, "waited_s": timeout_s}},
            )

    def __enter__(self) -> MetricsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
