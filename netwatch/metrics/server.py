"""Serve ``/metrics`` (and a landing page at ``/``) from a background thread.

:class:`MetricsServer` runs a :class:`~http.server.ThreadingHTTPServer` on ``host:port``
(default 127.0.0.1) for one injected :class:`~prometheus_client.CollectorRegistry`.
``/metrics`` negotiates the text or OpenMetrics format from ``Accept``; ``/`` is an HTML
page linking to it; anything else is 404.

An optional exporter-toolkit ``web-config.yml`` (:func:`load_web_config`) adds TLS and
basic auth. Supported keys: ``tls_server_config.{cert_file, key_file, client_ca_file,
client_auth_type (NoClientCert | VerifyClientCertIfGiven | RequireAndVerifyClientCert),
min_version (TLS12 | TLS13)}`` and ``basic_auth_users: {user: bcrypt hash}``. Relative
paths are relative to the file. Any other key is an error naming the file and key.

Known limits: the file is read once at start (no certificate rotation without restart,
unlike the Go toolkit, which re-reads it per request); ``max_version``, ``cipher_suites``,
``curve_preferences``, ``client_allowed_sans``, ``http_server_config`` and ``rate_limit``
are not supported. Basic auth needs the ``bcrypt`` package, imported only when
``basic_auth_users`` is set; a bcrypt check (tens of ms) runs on every authenticated
request.
"""

from __future__ import annotations

import base64
import binascii
import html
import importlib
import logging
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
REALM = "netwatch"

_TLS_KEYS = {"cert_file", "key_file", "client_ca_file", "client_auth_type", "min_version"}
_CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
_TLS_VERSIONS = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}

CheckPassword = Callable[[bytes, bytes], bool]


class WebConfigError(Exception):
    """The web config file cannot be used; the message names the file and key."""


@dataclass(frozen=True)
class WebConfig:
    """What a web-config file asks for: a server TLS context and basic-auth users."""

    tls: ssl.SSLContext | None = None
    users: Mapping[str, bytes] = field(default_factory=dict)  # user -> bcrypt hash
    check_password: CheckPassword | None = None  # bcrypt.checkpw when users are set

    def authorized(self, header: str | None) -> bool:
        """True when no users are configured or the Authorization header matches one."""
        if not self.users:
            return True
        if header is None or not header.startswith("Basic "):
            return False
        try:
            decoded = base64.b64decode(header[6:], validate=True).decode()
            user, sep, password = decoded.partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        if not sep or self.check_password is None:
            return False
        hashed = self.users.get(user)
        if hashed is None:
            # same cost as a real check, so timing does not tell which users exist
            self.check_password(password.encode(), next(iter(self.users.values())))
            return False
        try:
            return self.check_password(password.encode(), hashed)
        except ValueError:  # malformed hash
            return False


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


def _handler(
    registry: CollectorRegistry, web: WebConfig, version: str
) -> type[BaseHTTPRequestHandler]:
    page = LANDING_PAGE.format(version=f" {html.escape(version)}" if version else "").encode()

    class Handler(BaseHTTPRequestHandler):
        server_version = "netwatch"
        timeout = 30  # seconds a client may stall a connection

        def do_GET(self) -> None:
            if not web.authorized(self.headers.get("Authorization")):
                self._send(
                    401,
                    b"Unauthorized\n",
                    "text/plain; charset=utf-8",
                    {"WWW-Authenticate": f'Basic realm="{REALM}"'},
                )
                return
            route = self.path.split("?", 1)[0]
            if route == "/metrics":
                encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
                try:
                    body = encoder(registry)
                except Exception:  # a broken collector: 5xx, as the conventions ask
                    log.exception("metrics collection failed")
                    self._send(500, b"metrics collection failed\n", "text/plain")
                    return
                self._send(200, body, content_type)
            elif route == "/":
                self._send(200, page, "text/html; charset=utf-8")
            else:
                self._send(404, b"Not found\n", "text/plain; charset=utf-8")

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
            """Quiet: one scrape every few seconds is not worth a log line."""

    return Handler


class _Server(ThreadingHTTPServer):
    """Wraps each accepted connection in TLS in its own thread, so a slow handshake
    never blocks the accept loop."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        tls: ssl.SSLContext | None,
    ) -> None:
        self.tls = tls
        super().__init__(address, handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.tls is not None:
            request.settimeout(30)
            try:
                request = self.tls.wrap_socket(request, server_side=True)
            except (OSError, ssl.SSLError):
                return  # failed handshake: nothing to answer
        super().finish_request(request, client_address)


class MetricsServer:
    """The metrics endpoint on ``host:port`` (``port=0``: an ephemeral port, see
    :attr:`port`), served from a daemon thread until :meth:`close`."""

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
        self._httpd = _Server((host, port), _handler(registry, web, version), web.tls)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="netwatch-metrics", daemon=True
        )

    @property
    def port(self) -> int:
        """The port actually bound."""
        return int(self._httpd.server_address[1])

    def start(self) -> MetricsServer:
        """Start serving in the background; returns self."""
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and release the socket."""
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.server_close()

    def __enter__(self) -> MetricsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
