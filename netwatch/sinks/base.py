"""The sink base class, its registry, secrets handling and the HTTP helper sinks share.

A sink turns alert records (``Alert.record(count)``, as stored in the outbox) into one
delivery attempt and reports a :class:`Delivery`. Subclasses register themselves by class
name (``AlertmanagerSink`` -> ``alertmanager``, the config ``type``); a duplicate name fails
at import. ``accepts`` applies the sink's ``rules``, ``min_severity`` and ``groups`` filters,
and takes the end record of an incident (``status: ended``) only when the sink's ``ended``
key says so (null: the type's :attr:`Sink.ENDED_DEFAULT`: true for the webhook, Slack,
Teams, PagerDuty and e-mail sinks, false for JSON lines and syslog, so a log keeps one line
per notification; Alertmanager resolves its alerts itself and takes none).
:meth:`Sink.use_alerts` hands every sink the ``alerts:`` settings (the dashboard link
template; Alertmanager's life cycle).

Secrets (``url_file``/``url_env``, ``routing_key_file``/``routing_key_env``,
``password_file``/``password_env``, ``token_file``/``token_env``) are read once at
construction, held in :class:`Secret` (which never prints its value) and scrubbed from every
error text a sink returns; ``repr(sink)`` shows only its type and name.

HTTP client options (as Prometheus' and amtool's ``http_config``; the config allows them for
the Alertmanager and webhook sinks): ``username`` with ``password_file``/``password_env``
(basic auth) or ``token_file``/``token_env`` (``Authorization: Bearer``); ``ca_file`` (the
only CA trusted for the server's certificate, like Go's ``RootCAs``), ``cert_file`` and
``key_file`` (a client certificate), ``server_name`` (the name the certificate must carry,
and the SNI sent, when the URL's host is an address or another name). :func:`tls_context`
builds the context once, at construction; a file that does not load is a :class:`SinkError`.
A certificate the CA does not vouch for, or one for another name, fails the attempt with a
text that says which (retryable: a server's certificate can be replaced).

HTTP: :func:`http_post` (``http.client``) with a TOTAL deadline per attempt: connect, send
and the whole reply must fit in ``timeout_s``; a timer shuts the socket down at the deadline,
so a receiver that trickles its reply one byte at a time cannot stall the sender (per-socket-
operation timeouts alone would let it). 2xx is success, 429/5xx and network errors are
retryable (``Retry-After`` in seconds or as an HTTP-date is passed on; the outbox caps it),
other 4xx are permanent. ``Sink.cutoff`` (a monotonic time, set by the deliverer at shutdown)
shortens every attempt's deadline further.

State: a sink that keeps state across restarts (Alertmanager's firing alerts) reports it with
:meth:`Sink.state_changes` and gets it back with :meth:`Sink.restore_state`; the deliverer
stores it in the outbox database.

Known limits: HTTP-date parsing uses the injected wall clock of the sink; host names are
resolved by the system resolver, which the deadline does not bound; no HTTP proxy support
(``*_proxy`` variables are ignored); the reply body is read up to ``MAX_REPLY_BYTES``.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import os
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, ClassVar, Protocol

from netwatch.alerts.model import Severity, Status, status_of
from netwatch.config.schema import DEFAULT_GROUP, AlertsConfig, SinkConfig

Record = dict[str, Any]


class SinkError(Exception):
    """A sink cannot be built (missing secret, unknown type); never carries a secret."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """What one delivery attempt did. ``permanent``: retrying cannot help (HTTP 4xx)."""

    ok: bool
    retry_after: float | None = None
    error: str = ""
    permanent: bool = False

    @classmethod
    def success(cls) -> Delivery:
        return cls(True)

    @classmethod
    def failure(
        cls, error: str, retry_after: float | None = None, *, permanent: bool = False
    ) -> Delivery:
        return cls(False, retry_after, error, permanent)


@dataclass(frozen=True, slots=True)
class StateDelta:
    """Sink state to persist: keys set or replaced, keys gone; ``full``: replaces all."""

    upserts: Mapping[str, Record]
    deletes: frozenset[str] = frozenset()
    full: bool = False


class Secret:
    """A secret string that never shows itself in repr or str."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


def read_secret(
    name: str, what: str, file: Path | None, env: str | None, getenv: Callable[[str], str | None]
) -> Secret:
    """The secret from ``file`` (stripped) or the environment variable ``env``."""
    if file is not None:
        try:
            value = file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SinkError(
                f"sink {name}: cannot read {what}_file {file}: {exc.strerror}"
            ) from None
        source = f"{what}_file {file}"
    elif env is not None:
        value = (getenv(env) or "").strip()
        source = f"{what}_env {env}"
    else:
        raise SinkError(f"sink {name}: set {what}_file or {what}_env")
    if not value:
        raise SinkError(f"sink {name}: {source} is empty or unset")
    return Secret(value)


def _no_passphrase() -> str:
    """A client key needing a passphrase fails to load instead of prompting on a terminal."""
    return ""


def tls_context(
    name: str, ca_file: Path | None, cert_file: Path | None, key_file: Path | None
) -> ssl.SSLContext:
    """A client TLS context: certificates checked against ``ca_file`` alone (the system's
    CAs without it), host names checked, and the client certificate when given."""
    try:
        context = ssl.create_default_context(cafile=None if ca_file is None else str(ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise SinkError(f"sink {name}: cannot load ca_file {ca_file}: {_why(exc)}") from None
    if cert_file is not None:
        try:
            context.load_cert_chain(cert_file, key_file, password=_no_passphrase)
        except (OSError, ssl.SSLError) as exc:
            raise SinkError(
                f"sink {name}: cannot load cert_file {cert_file} with key_file {key_file}: "
                f"{_why(exc)} (a key needs to be unencrypted)"
            ) from None
    return context


def _why(exc: OSError) -> str:
    if isinstance(exc, ssl.SSLError):
        return str(exc.reason or exc.strerror or type(exc).__name__)
    return exc.strerror or type(exc).__name__


@dataclass(frozen=True, slots=True)
class HttpResult:
    """The part of an HTTP response a sink needs."""

    status: int
    retry_after: str | None = None
    error: str = ""


HttpPost = Callable[[str, bytes, Mapping[str, str], float], HttpResult]


MAX_REPLY_BYTES = 1 << 16
MIN_ATTEMPT_S = 0.05  # an attempt shorter than this is not started


class HasSocket(Protocol):
    """A client connection with its socket in ``sock`` (http.client's or smtplib's)."""

    @property
    def sock(self) -> socket.socket | None: ...


class Cutoff:
    """Shuts a connection's socket down at a monotonic deadline (from a timer thread), or
    earlier through :meth:`fire` (a shutdown), so every blocking read or write on it returns
    at once. A connection still without a socket when it fires is left to its own socket
    timeout; the caller checks :attr:`fired` once it has one."""

    def __init__(self, conn: HasSocket, seconds: float) -> None:
        self.fired = False
        self._conn = conn
        self._timer = threading.Timer(seconds, self.fire)
        self._timer.daemon = True
        self._timer.start()

    def fire(self) -> None:
        self.fired = True
        sock = self._conn.sock
        if sock is not None:
            # the plain socket's shutdown: an SSLSocket's would drop its TLS state
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def cancel(self) -> None:
        self._timer.cancel()


class Attempts:
    """The HTTP attempts in progress of one sink, so a shutdown can cut them short."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active: set[Cutoff] = set()

    def add(self, cutoff: Cutoff) -> None:
        with self._lock:
            self._active.add(cutoff)

    def discard(self, cutoff: Cutoff) -> None:
        with self._lock:
            self._active.discard(cutoff)

    def abort(self) -> None:
        """End every attempt in progress now."""
        with self._lock:
            active = list(self._active)
        for cutoff in active:
            cutoff.fire()


class _HTTPSConnection(http.client.HTTPSConnection):
    """An HTTPS connection that checks the certificate (and sends SNI) for ``server_name``
    instead of the URL's host."""

    def __init__(
        self, host: str, port: int | None, *, timeout: float, tls: ssl.SSLContext, server_name: str
    ) -> None:
        super().__init__(host, port, timeout=timeout, context=tls)
        self._tls = tls
        self._server_name = server_name

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)  # no proxy tunnel: none is supported
        self.sock = self._tls.wrap_socket(self.sock, server_hostname=self._server_name)


def _connection(
    scheme: str,
    host: str,
    port: int | None,
    timeout: float,
    tls: ssl.SSLContext | None,
    server_name: str | None,
) -> http.client.HTTPConnection:
    if scheme == "http":
        return http.client.HTTPConnection(host, port, timeout=timeout)
    if server_name:
        context = tls or ssl.create_default_context()
        return _HTTPSConnection(host, port, timeout=timeout, tls=context, server_name=server_name)
    return http.client.HTTPSConnection(host, port, timeout=timeout, context=tls)


# OpenSSL's X509_V_ERR_HOSTNAME_MISMATCH and X509_V_ERR_IP_ADDRESS_MISMATCH
_NAME_MISMATCH = frozenset({62, 64})


def describe_tls_error(exc: ssl.SSLError) -> str:
    """What went wrong in a TLS handshake, in words an operator can act on; never a host
    name (it may be part of a secret URL)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        if exc.verify_code in _NAME_MISMATCH:
            return (
                "TLS: the server's certificate is not valid for the host name checked "
                "(server_name sets the name the certificate must carry)"
            )
        reason = exc.verify_message or "verification failed"
        return f"TLS: the server's certificate is not trusted ({reason}; ca_file sets the CA)"
    return f"TLS handshake failed ({exc.reason or type(exc).__name__})"


def http_post(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    timeout: float,
    *,
    attempts: Attempts | None = None,
    tls: ssl.SSLContext | None = None,
    server_name: str | None = None,
) -> HttpResult:
    """POST within a total deadline of ``timeout`` seconds; status 0 and an error text (never
    the URL) when no complete HTTP answer came in time. ``attempts``: where a shutdown finds
    this attempt to cut it short; ``tls``: the context for https (default: the system's
    CAs); ``server_name``: the name the server's certificate is checked against."""
    try:
        parts = urllib.parse.urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return HttpResult(0, None, "request failed: invalid URL")
    if parts.scheme not in ("http", "https") or not host:
        return HttpResult(0, None, "request failed: unsupported URL")
    conn = _connection(parts.scheme, host, port, timeout, tls, server_name)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    cutoff = Cutoff(conn, timeout)
    if attempts is not None:
        attempts.add(cutoff)
    try:
        conn.request("POST", target, body=body, headers=dict(headers))
        resp = conn.getresponse()
        resp.read(MAX_REPLY_BYTES)
        if cutoff.fired:
            raise TimeoutError
        if resp.status >= 300:
            return HttpResult(resp.status, resp.getheader("Retry-After"), f"HTTP {resp.status}")
        return HttpResult(resp.status)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        if cutoff.fired or isinstance(exc, TimeoutError):
            return HttpResult(0, None, f"timed out (deadline {timeout:g} s or shutdown)")
        if isinstance(exc, ssl.SSLError):
            return HttpResult(0, None, describe_tls_error(exc))
        what = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        return HttpResult(0, None, f"connection failed: {what}")
    finally:
        if attempts is not None:
            attempts.discard(cutoff)
        cutoff.cancel()
        conn.close()


def parse_retry_after(value: str | None, now: float) -> float | None:
    """``Retry-After`` as seconds from ``now`` (delta-seconds or HTTP-date), else None."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


class Sink:
    """Base of all sinks: filters, secrets, and ``send(records) -> Delivery``."""

    registry: ClassVar[dict[str, type[Sink]]] = {}
    name_: ClassVar[str] = ""
    max_batch: ClassVar[int] = 100
    #: Whether the sink takes incident ends when its config's ``ended`` is null.
    ENDED_DEFAULT: ClassVar[bool] = False
    cutoff: float | None = None  # monotonic time no attempt may outlast (set at shutdown)

    def __init_subclass__(cls, *, abstract: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if abstract:
            return
        kind = cls.__name__.removesuffix("Sink").lower()
        if kind in Sink.registry:
            raise TypeError(f"sink type {kind!r} is defined twice ({Sink.registry[kind]}, {cls})")
        cls.name_ = kind
        Sink.registry[kind] = cls

    def __init__(self, config: SinkConfig, *, environ: Mapping[str, str] | None = None) -> None:
        self.config = config
        self.name = config.name
        env: Mapping[str, str] = os.environ if environ is None else environ
        # a closure, so neither repr() nor vars() of the sink shows the environment
        self._getenv: Callable[[str], str | None] = lambda key: env.get(key)  # noqa: PLW0108
        self._secrets: list[Secret] = []
        self._min = Severity(config.min_severity)
        self.wants_ended = self.ENDED_DEFAULT if config.ended is None else config.ended
        #: ``alerts.dashboard_url`` (set by :meth:`use_alerts`); None: no link.
        self.dashboard_url: str | None = None

    def use_alerts(self, alerts: AlertsConfig) -> None:
        """Take the ``alerts:`` settings that shape messages (the dashboard link)."""
        self.dashboard_url = alerts.dashboard_url

    def _secret(self, what: str, file: Path | None, env: str | None) -> Secret:
        secret = read_secret(self.name, what, file, env, self._getenv)
        self._secrets.append(secret)
        return secret

    def scrub(self, text: str) -> str:
        """``text`` with every secret of this sink replaced by ``***``."""
        for secret in self._secrets:
            text = text.replace(secret.reveal(), "***")
        return text

    def accepts(self, record: Mapping[str, Any], group: str | None = None) -> bool:
        """True when this sink wants the alert (rules, min_severity, groups filters; an
        incident's end only when the sink takes ends)."""
        cfg = self.config
        if status_of(record) is Status.ENDED and not self.wants_ended:
            return False
        if cfg.rules and record.get("rule") not in cfg.rules:
            return False
        try:
            if not Severity(str(record.get("severity"))).at_least(self._min):
                return False
        except ValueError:
            return False
        return not cfg.groups or (group or DEFAULT_GROUP) in cfg.groups

    def send(self, payloads: Sequence[Record]) -> Delivery:
        """Deliver a batch of alert records (at most ``max_batch``)."""
        raise NotImplementedError

    def note(self, record: Record, now: float, *, queued: bool = True) -> None:
        """An accepted alert was emitted (``queued``: it is in the outbox for this sink) or
        seen again (a suppressed repeat) at wall time ``now``. For sinks that keep alerts
        firing, such as Alertmanager's; nothing by default."""

    def refresh(self, now: float) -> int:
        """Periodic work (re-send firing alerts, resolve quiet ones); returns requests made."""
        return 0

    def state_changes(self, full: bool = False) -> StateDelta | None:
        """State to persist since the last call (``full``: all of it), or None: nothing."""
        return None

    def restore_state(self, entries: Mapping[str, Record]) -> None:
        """State persisted by an earlier run (what :meth:`state_changes` returned)."""

    def interrupt_at(self, deadline: float) -> None:
        """From now on no attempt may outlast ``deadline`` (monotonic); one in progress then
        is cut short by :meth:`abort` (called from a timer thread)."""
        self.cutoff = deadline
        timer = threading.Timer(max(0.0, deadline - time.monotonic()), self.abort)
        timer.daemon = True
        timer.start()

    def abort(self) -> None:
        """End the attempt in progress now (from another thread); nothing by default."""

    def attempt_budget(self, timeout_s: float) -> float:
        """Seconds one attempt may take: ``timeout_s``, cut short by :attr:`cutoff`."""
        if self.cutoff is None:
            return timeout_s
        return min(timeout_s, self.cutoff - time.monotonic())

    def close(self) -> None:
        """Release files or sockets."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    __str__ = __repr__


class HttpSink(Sink, abstract=True):
    """A sink that POSTs JSON over HTTP (injected ``http`` and wall ``clock`` for tests),
    with the HTTP client options of its config (auth header, TLS; see the module
    docstring). An injected ``http`` gets the ``Authorization`` header but not the TLS
    context."""

    def __init__(
        self,
        config: SinkConfig,
        *,
        environ: Mapping[str, str] | None = None,
        http: HttpPost = http_post,
        clock: Callable[[], float] = time.time,
        timeout_s: float = 10.0,
    ) -> None:
        super().__init__(config, environ=environ)
        self._http = http
        self._clock = clock
        self.timeout_s = timeout_s
        self._attempts = Attempts()
        self._authorization = self._auth_header(config)
        self._tls: ssl.SSLContext | None = None
        if config.ca_file is not None or config.cert_file is not None:
            self._tls = tls_context(self.name, config.ca_file, config.cert_file, config.key_file)
        self._server_name = config.server_name

    def _auth_header(self, config: SinkConfig) -> Secret | None:
        """``Authorization``'s value: a bearer token, basic auth, or None."""
        if config.token_file is not None or config.token_env is not None:
            token = self._secret("token", config.token_file, config.token_env)
            header = Secret(f"Bearer {token.reveal()}")
        elif config.username is not None:
            password = self._secret("password", config.password_file, config.password_env)
            pair = f"{config.username}:{password.reveal()}".encode()
            header = Secret(f"Basic {base64.b64encode(pair).decode('ascii')}")
        else:
            return None
        self._secrets.append(header)
        return header

    def abort(self) -> None:
        self._attempts.abort()

    def post_json(
        self,
        url: str,
        body: bytes,
        ok: Callable[[int], bool] | None = None,
        *,
        timeout_s: float | None = None,
    ) -> Delivery:
        """POST one JSON body within ``timeout_s`` (default: the sink's) and classify the
        answer."""
        headers = {"Content-Type": "application/json", "User-Agent": "netwatch"}
        if self._authorization is not None:
            headers["Authorization"] = self._authorization.reveal()
        budget = self.attempt_budget(self.timeout_s if timeout_s is None else timeout_s)
        if budget < MIN_ATTEMPT_S:
            return Delivery.failure("no time left for an attempt (shutting down)")
        if self._http is http_post:
            res = http_post(
                url,
                body,
                headers,
                budget,
                attempts=self._attempts,
                tls=self._tls,
                server_name=self._server_name,
            )
        else:
            res = self._http(url, body, headers, budget)
        if (ok or _is_2xx)(res.status):
            return Delivery.success()
        error = self.scrub(res.error or f"HTTP {res.status}")
        retryable = res.status in (0, 408, 429) or res.status >= 500
        after = parse_retry_after(res.retry_after, self._clock())
        return Delivery.failure(error, after, permanent=not retryable)


def _is_2xx(status: int) -> bool:
    return 200 <= status < 300
