"""The syslog sink: one RFC 5424 message per alert record, over UDP, TCP or a unix socket.

Each alert becomes ``<PRI>1 TIMESTAMP HOSTNAME netwatch PROCID MSGID [SD] MSG``. PRI is
``facility * 8 + severity`` (facility ``local0`` unless the ``facility`` keyword says otherwise;
severity critical->2 crit, high->3 err, medium->4 warning, low->5 notice, info->6 info).
TIMESTAMP is the alert's ``ts``, HOSTNAME ``socket.gethostname()`` (or the ``hostname``
keyword), PROCID the daemon's pid and MSGID the rule id. STRUCTURED-DATA is one element
``[netwatch@32473 rule=".." ..]`` with the non-null values of :data:`SD_PARAMS` (each capped at
:data:`MAX_PARAM_CHARS` characters); 32473 is the *example* Private Enterprise Number that
RFC 5612 reserves for documentation, so sites with their own PEN change :data:`PEN`.

``format: rfc5424`` sends the summary as MSG-UTF8 (a BOM, then UTF-8). ``format: cef`` sends
``CEF:0|netwatch|netwatch|<version>|<rule>|<summary>|<0-10>|<extension>`` as MSG without a BOM
(CEF parsers look for ``CEF:`` at the start of MSG) and ``-`` as STRUCTURED-DATA, since the
extension already carries every field; ``msg=`` is the last key, so truncation eats it first.

Packet-derived values are hostile: header fields keep only printable US-ASCII (anything else
becomes ``-``), PARAM-VALUEs escape ``"``, ``\\`` and ``]`` (RFC 5424 6.3.3), CEF escapes
``\\`` and ``|`` in the header and ``\\``, ``=``, CR and LF in the extension, and every other
control character (C0, DEL, C1, U+2028/U+2029) in SD, MSG or CEF becomes U+FFFD. A message
therefore never holds a NUL, CR or LF, whatever the framing.

Config read: ``sinks[].address`` (``host:port`` or a socket path), ``transport`` (udp, tcp or
unix, inferred by the schema), ``format`` and ``ended`` (default false: one message per
notification; true adds one per incident end, its record's fields as for an alert). Transports:

- udp: one datagram per alert;
- tcp: RFC 6587 octet counting (``LEN SP MSG``), one ``sendall`` per batch;
- unix: a SOCK_DGRAM socket first, and SOCK_STREAM when the path is a stream socket
  (EPROTOTYPE), as glibc's ``syslog(3)`` does for ``/dev/log``; on a stream socket each
  message ends with a NUL, as glibc's do.

Every message is capped at ``max_message`` bytes (8192, rsyslog's default maximum; at least
480, what RFC 5426 receivers must take): MSG is cut on a UTF-8 boundary, never split into two
messages, and the SD is dropped if it alone does not fit. TCP and unix connections stay open
between batches; one whose peer has closed is reopened before sending, and a send that fails
on a reused connection is tried once more on a fresh one. One attempt (connects, the retry
and every send) has a TOTAL deadline of ``timeout_s`` (5 s; shortened by ``cutoff`` at
shutdown): each socket operation gets only the time left, so a receiver that reads one byte
at a time cannot stall the sender beyond it. Errors (refused, timeout, missing path, ...)
return a retryable :class:`Delivery` failure for the whole batch, never raise and are never
permanent.

Known limits: delivery is at-least-once (a batch that fails midway is sent again in full, so a
receiver can see some alerts twice); UDP reports no loss (a refusal only shows as an error on
a later send); host names are resolved with the system resolver, which ``timeout_s`` does not
bound; no TLS (RFC 5425).
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import re
import select
import socket
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, TypeGuard

from netwatch import __version__
from netwatch.alerts.model import rfc3339
from netwatch.config.schema import SinkConfig
from netwatch.config.values import HostPort
from netwatch.sinks.base import Delivery, Record, Sink, SinkError

FACILITY_LOCAL0: Final = 16
PEN: Final = 32473  # the RFC 5612 documentation example; replace with the site's own PEN
SD_ID: Final = f"netwatch@{PEN}"
APP_NAME: Final = "netwatch"
NIL: Final = "-"
BOM: Final = b"\xef\xbb\xbf"
DEFAULT_MAX_MESSAGE: Final = 8192
MIN_MAX_MESSAGE: Final = 480  # RFC 5426 3.2: every receiver must accept 480 octets
MAX_PARAM_CHARS: Final = 256  # a DNS name is at most 253
MAX_CEF_NAME_CHARS: Final = 512

SEVERITIES: Final[Mapping[str, int]] = {
    "critical": 2,  # crit
    "high": 3,  # err
    "medium": 4,  # warning
    "low": 5,  # notice
    "info": 6,  # informational
}
CEF_SEVERITIES: Final[Mapping[str, int]] = {
    "critical": 10,
    "high": 8,
    "medium": 5,
    "low": 3,
    "info": 1,
}
SD_PARAMS: Final = (
    "rule",
    "severity",
    "device",
    "device_ip",
    "peer_ip",
    "peer_port",
    "proto",
    "peer_country",
    "peer_asn",
    "peer_name",
    "flow_uid",
    "community_id",
    "count",
    "status",  # only an incident's end carries it ("ended")
)
# HOSTNAME, APP-NAME, PROCID, MSGID maximum lengths (RFC 5424 6.2)
_HOST_MAX, _APP_MAX, _PROCID_MAX, _MSGID_MAX = 255, 48, 128, 32
_CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SD_ESCAPE_RE = re.compile(r'(["\\\]])')
_CEF_HEADER_RE = re.compile(r"([\\|])")
_CEF_EXT_RE = re.compile(r"([\\=])")
_TIMESTAMP_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?(Z|[+-]\d\d:\d\d)", re.ASCII)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_DIRECTIONS: Final[Mapping[str, str]] = {"inbound": "0", "outbound": "1"}


def _safe(text: str) -> str:
    """``text`` with every control or line-separator character replaced by U+FFFD."""
    return _CONTROL_RE.sub("\ufffd", text)


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "replace")  # a lone surrogate becomes "?"


def header_field(value: object, limit: int) -> str:
    """An RFC 5424 header field: printable US-ASCII only (others become ``-``), at most
    ``limit`` characters, ``-`` (NILVALUE) when empty."""
    text = "".join(c if "!" <= c <= "~" else "-" for c in str(value)[:limit])
    return text or NIL


def sd_value(value: object) -> str:
    """A PARAM-VALUE: capped, controls replaced, ``"``, ``\\`` and ``]`` escaped."""
    return _SD_ESCAPE_RE.sub(r"\\\1", _safe(str(value)[:MAX_PARAM_CHARS]))


def structured_data(record: Mapping[str, Any]) -> str:
    """The one SD-ELEMENT of an alert record (null values left out)."""
    params = "".join(
        f' {name}="{sd_value(record[name])}"' for name in SD_PARAMS if record.get(name) is not None
    )
    return f"[{SD_ID}{params}]"


def _is_number(value: object) -> TypeGuard[float]:
    """A finite epoch time in seconds (not a boolean)."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and abs(value) < 1e11
    )


def timestamp(value: object) -> str:
    """The record's ``ts`` as an RFC 5424 TIMESTAMP (``-`` when it is not one)."""
    if _is_number(value):
        return rfc3339(float(value))
    text = str(value)
    return text if _TIMESTAMP_RE.fullmatch(text) else NIL


def epoch_ms(value: object) -> int | None:
    """The record's ``ts`` in milliseconds since the epoch, or None."""
    if _is_number(value):
        return int(float(value) * 1000)
    try:
        when = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    if when.tzinfo is None:
        return None
    return (when - _EPOCH) // timedelta(milliseconds=1)


def cef_header(value: object) -> str:
    """A CEF header field: controls replaced, ``\\`` and ``|`` escaped."""
    return _CEF_HEADER_RE.sub(r"\\\1", _safe(str(value)))


def cef_value(value: object) -> str:
    """A CEF extension value: ``\\`` and ``=`` escaped, CR/LF as ``\\r``/``\\n``."""
    text = _CEF_EXT_RE.sub(r"\\\1", str(value))
    return _safe(text.replace("\r", "\\r").replace("\n", "\\n"))


def cef_line(record: Mapping[str, Any]) -> str:
    """The CEF:0 line of an alert record."""
    severity = str(record.get("severity"))
    summary = str(record.get("summary") or "")
    head = "|".join(
        cef_header(v)
        for v in (
            "CEF:0",
            "netwatch",
            "netwatch",
            __version__,
            record.get("rule") or "",
            summary[:MAX_CEF_NAME_CHARS],
            CEF_SEVERITIES.get(severity, 1),
        )
    )
    ext: list[tuple[str, object]] = [
        ("rt", epoch_ms(record.get("ts"))),
        ("src", record.get("device_ip")),
        ("shost", record.get("device")),
        ("smac", record.get("device_mac")),
        ("dst", record.get("peer_ip")),
        ("dpt", record.get("peer_port")),
        ("dhost", record.get("peer_name")),
        ("proto", record.get("proto")),
        ("app", record.get("service")),
        ("deviceDirection", _DIRECTIONS.get(str(record.get("direction")))),
        ("cnt", record.get("count")),
        ("act", record.get("status")),  # "ended" on an incident's end, else absent
    ]
    custom = (
        ("cs1", "flow_uid"),
        ("cs2", "community_id"),
        ("cs3", "peer_country"),
        ("cs4", "peer_org"),
        ("cn1", "peer_asn"),
    )
    for key, field in custom:
        if record.get(field) is not None:
            ext += [(key, record[field]), (f"{key}Label", field)]
    ext.append(("msg", summary))
    body = " ".join(f"{k}={cef_value(v)}" for k, v in ext if v is not None)
    return f"{head}|{body}"


def _cut(data: bytes, room: int) -> bytes:
    """``data`` cut to at most ``room`` bytes on a UTF-8 boundary, without leaving an odd
    trailing backslash (half of an escape)."""
    if len(data) <= room:
        return data
    end = max(room, 0)
    while end > 0 and data[end] & 0xC0 == 0x80:
        end -= 1
    cut = data[:end]
    trailing = len(cut) - len(cut.rstrip(b"\\"))
    return cut[:-1] if trailing % 2 else cut


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__


def _peer_closed(sock: socket.socket) -> bool:
    """True when a stream peer has closed (readable at EOF or reset): syslog receivers
    never send, so anything readable means the connection is gone or unusable."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        return sock.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True


class SyslogSink(Sink):
    """Sends alerts as RFC 5424 syslog messages (optionally CEF) over UDP, TCP or unix."""

    def __init__(
        self,
        config: SinkConfig,
        *,
        environ: Mapping[str, str] | None = None,
        timeout_s: float = 5.0,
        facility: int = FACILITY_LOCAL0,
        hostname: str | None = None,
        max_message: int = DEFAULT_MAX_MESSAGE,
    ) -> None:
        super().__init__(config, environ=environ)
        if config.address is None:
            raise SinkError(f"sink {config.name}: address is required")
        if not 0 <= facility <= 23:
            raise SinkError(f"sink {config.name}: facility {facility} is not 0..23")
        if max_message < MIN_MAX_MESSAGE:
            raise SinkError(f"sink {config.name}: max_message must be >= {MIN_MAX_MESSAGE}")
        self.address: HostPort | Path = config.address
        self.transport = config.transport or ("unix" if isinstance(self.address, Path) else "udp")
        self.cef = config.format == "cef"
        self.timeout_s = timeout_s
        self.facility = facility
        self.hostname = header_field(
            socket.gethostname() if hostname is None else hostname, _HOST_MAX
        )
        self.max_message = max_message
        self._sock: socket.socket | None = None
        self._stream = False  # the open socket is a byte stream (tcp, unix stream)

    # ------------------------------------------------------------------ formatting

    def format(self, record: Mapping[str, Any]) -> bytes:
        """One alert record as one RFC 5424 message (no framing), at most ``max_message``."""
        pri = self.facility * 8 + SEVERITIES.get(str(record.get("severity")), 6)
        header = " ".join(
            (
                f"<{pri}>1",
                timestamp(record.get("ts")),
                self.hostname,
                header_field(APP_NAME, _APP_MAX),
                header_field(os.getpid(), _PROCID_MAX),
                header_field(record.get("rule") or "", _MSGID_MAX),
            )
        )
        if self.cef:
            sd, body = NIL, _utf8(cef_line(record))
        else:
            sd, body = structured_data(record), BOM + _utf8(_safe(str(record.get("summary"))))
        head = _utf8(f"{header} {sd} ")
        if len(head) + len(body) > self.max_message:
            if len(head) + len(BOM) > self.max_message:
                head = _utf8(f"{header} {NIL} ")
            body = _cut(body, self.max_message - len(head))
        return head + body

    # ------------------------------------------------------------------ transport

    def _left(self, deadline: float) -> float:
        """Seconds left before ``deadline`` (monotonic); TimeoutError when none."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        return left

    def _connect(self, deadline: float) -> socket.socket:
        if isinstance(self.address, Path):
            return self._connect_unix(str(self.address), deadline)
        host, port = self.address.host, self.address.port
        if self.transport == "tcp":
            self._stream = True
            return socket.create_connection((host, port), timeout=self._left(deadline))
        self._stream = False
        error: OSError = OSError(errno.EADDRNOTAVAIL, "no address")
        for family, kind, proto, _, addr in socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM):
            sock = socket.socket(family, kind, proto)
            try:
                sock.settimeout(self._left(deadline))
                sock.connect(addr)
            except OSError as exc:
                sock.close()
                error = exc
                continue
            return sock
        raise error

    def _connect_unix(self, path: str, deadline: float) -> socket.socket:
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            sock = socket.socket(socket.AF_UNIX, kind)
            try:
                sock.settimeout(self._left(deadline))
                sock.connect(path)
            except OSError as exc:
                sock.close()
                if kind == socket.SOCK_DGRAM and exc.errno == errno.EPROTOTYPE:
                    continue  # a stream socket: fall back, as glibc's syslog(3) does
                raise
            self._stream = kind == socket.SOCK_STREAM
            return sock
        raise AssertionError("unreachable")  # pragma: no cover

    def _write(self, sock: socket.socket, messages: Sequence[bytes], deadline: float) -> None:
        # sendall's timeout bounds the whole call (Python >= 3.5), not each chunk
        sock.settimeout(self._left(deadline))
        if not self._stream:
            for message in messages:
                sock.send(message)
        elif self.transport == "tcp":
            sock.sendall(b"".join(b"%d %s" % (len(m), m) for m in messages))
        else:
            sock.sendall(b"".join(m + b"\0" for m in messages))

    def _drop(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    def send(self, payloads: Sequence[Record]) -> Delivery:
        if not payloads:
            return Delivery.success()
        messages = [self.format(r) for r in payloads]
        deadline = time.monotonic() + self.attempt_budget(self.timeout_s)
        if self._sock is not None and self._stream and _peer_closed(self._sock):
            self._drop()
        for attempt in range(2):
            reused = self._sock is not None
            try:
                if self._sock is None:
                    self._sock = self._connect(deadline)
                self._write(self._sock, messages, deadline)
            except (OSError, ValueError) as exc:
                self._drop()
                if reused and attempt == 0:
                    continue  # the kept connection went stale: once more on a fresh one
                where = f"{self.transport} {self.address}"
                return Delivery.failure(self.scrub(f"cannot send to {where}: {_describe(exc)}"))
            return Delivery.success()
        raise AssertionError("unreachable")  # pragma: no cover

    def abort(self) -> None:
        """Cut the send in progress short (shutdown): shut the socket down."""
        sock = self._sock
        if sock is not None and self._stream:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._drop()
