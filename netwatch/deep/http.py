"""HTTP/1.x request and response head parser (also SSDP, which is HTTP over UDP).

Runs only on the first payload bytes of flows the fast path flags as HTTP/SSDP/SOAP; never
per packet. Reads no configuration. ``parse_head`` and ``body_incomplete`` are shared with
the RTSP parser. :class:`HttpParser` is the registered deep parser: it claims a TCP client's
first bytes that start with a known method and a space, and a server's that start
``HTTP/``.

Hand-written rather than ``dpkt.http``: dpkt rejects the SSDP search method ``M-SEARCH``,
raises ``NeedData`` when a POST body is cut at the end of the first segment (so a SOAP
``AddPortMapping`` loses its headers too), raises on one odd header line (e.g. obs-fold
continuations), folds repeated headers into one dict entry and has no limit on header
count (checked with dpkt 1.9.8).  Here the head is read up to the blank line or to the end
of ``data``.

Known limits:
- Only the first ``MAX_HEAD_BYTES`` are read and at most ``MAX_HEADERS`` headers are kept.
- A final header line with no line ending is dropped: it is most likely cut mid-value.
  The start line alone is accepted without a line ending (its shape shows it is whole).
- Bytes are decoded as ISO-8859-1, so nothing is lost or raised; non-ASCII Host names are
  kept as they are (no IDNA conversion).
- HTTP/0.9 requests (no version) and HTTP/2 (binary framing) are not parsed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from netwatch.deep.base import (
    OWNER,
    Context,
    DeepParser,
    Verdict,
    drop_service,
    service,
    tcp_partial,
)
from netwatch.deep.dns import normalize_name
from netwatch.deep.upnp import UPNP_DEVICE_NS, observe_description

if TYPE_CHECKING:
    from netwatch.flow.table import Flow

MAX_HEAD_BYTES = 16384
#: The TCP ports Zeek's HTTP analyzer is attached to (``base/protocols/http/main.zeek``):
#: there a request alone confirms ``http``; elsewhere the reply must be HTTP too.
HTTP_PORTS = frozenset({80, 81, 631, 1080, 3128, 8000, 8080, 8888})
#: ``flow.app`` key: the client sent an HTTP request (a reply then confirms the service).
_REQUESTED = "_http_request"
#: ``flow.app`` key: the server's first bytes were judged (HTTP reply or violation).
_REPLIED = "_http_reply"
#: ``flow.app`` key: a CONNECT request waits for its reply (200 opens a tunnel).
_CONNECT = "_http_connect"
MAX_HEADERS = 64

Headers = tuple[tuple[str, str], ...]

HTTP_METHODS = frozenset(
    {
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
        "M-SEARCH", "M-POST", "NOTIFY", "SUBSCRIBE", "UNSUBSCRIBE",
    }
)  # fmt: skip
_HTTP_VERSION = re.compile(r"HTTP/\d\.\d")
#: A request method: any token (Zeek's HTTP analyzer takes ``QUERY`` or ``PROPFIND`` alike).
_METHOD = re.compile(r"[A-Z][A-Z0-9_-]{0,31}")
_STATUS = re.compile(r"[1-9]\d\d")
_MAX_LINES = 1 + 4 * MAX_HEADERS  # header lines examined, counting skipped ones


@dataclass(frozen=True, slots=True)
class MessageHead:
    """Start line and headers of an HTTP-like message; ``body`` is None if the head is cut."""

    start_line: str
    headers: Headers
    body: bytes | None


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """An HTTP request head; ``host`` is normalised (lowercase, no port, no trailing dot)."""

    method: str
    uri: str
    host: str | None
    user_agent: str | None
    headers: Headers


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """An HTTP response head."""

    status: int
    reason: str
    server: str | None
    www_authenticate: str | None
    headers: Headers


def parse_http_request(data: bytes) -> HttpRequest | None:
    """Parse an HTTP/1.x or SSDP request head; None if ``data`` does not start with one."""
    head = parse_head(data)
    if head is None:
        return None
    parts = split_request_line(head.start_line)
    if parts is None or not _METHOD.fullmatch(parts[0]) or not _HTTP_VERSION.fullmatch(parts[2]):
        return None
    return HttpRequest(
        method=parts[0],
        uri=parts[1],
        host=normalize_host(header(head.headers, "host")),
        user_agent=header(head.headers, "user-agent"),
        headers=head.headers,
    )


def parse_http_response(data: bytes) -> HttpResponse | None:
    """Parse an HTTP/1.x response head; None if ``data`` does not start with one."""
    head = parse_head(data)
    if head is None:
        return None
    parts = split_status_line(head.start_line)
    if parts is None or not _HTTP_VERSION.fullmatch(parts[0]):
        return None
    return HttpResponse(
        status=parts[1],
        reason=parts[2],
        server=header(head.headers, "server"),
        www_authenticate=header(head.headers, "www-authenticate"),
        headers=head.headers,
    )


def parse_head(data: bytes) -> MessageHead | None:
    """Split ``data`` into start line, headers (names lowercased) and body, if present."""
    head, body = _cut_head(data)
    if not head:
        return None
    lines = head.decode("latin-1").split("\n")
    start_line = lines[0].strip()
    if not start_line:
        return None
    return MessageHead(start_line, _parse_header_lines(lines[1:_MAX_LINES]), body)


def split_request_line(line: str) -> tuple[str, str, str] | None:
    """``METHOD URI VERSION`` -> its three parts (URI may contain spaces); None if malformed."""
    method, _, rest = line.partition(" ")
    uri, _, version = rest.strip().rpartition(" ")
    uri = uri.strip()
    if not method or not uri or not version:
        return None
    return method, uri, version


def split_status_line(line: str) -> tuple[str, int, str] | None:
    """``VERSION STATUS REASON`` -> (version, status, reason); None if malformed."""
    parts = line.split(None, 2)
    if len(parts) < 2 or not _STATUS.fullmatch(parts[1]):
        return None
    return parts[0], int(parts[1]), parts[2] if len(parts) == 3 else ""


def header(headers: Headers, name: str) -> str | None:
    """The first value of header ``name`` (lowercase), or None."""
    for key, value in headers:
        if key == name:
            return value
    return None


def normalize_host(value: str | None) -> str | None:
    """A Host header value without port or IPv6 brackets, normalised like a DNS name."""
    if value is None:
        return None
    host = value.strip()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host[1:]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    return normalize_name(host)


def _cut_head(data: bytes) -> tuple[bytes, bytes | None]:
    """(head bytes without the blank line, body bytes or None when no blank line is seen)."""
    end = data.find(b"\r\n\r\n", 0, MAX_HEAD_BYTES)
    bare = data.find(b"\n\n", 0, MAX_HEAD_BYTES)  # never at ``end``: that byte is a CR
    if bare >= 0 and (end < 0 or bare < end):
        return data[:bare], data[bare + 2 :]
    if end >= 0:
        return data[:end], data[end + 4 :]
    last_newline = data.rfind(b"\n", 0, MAX_HEAD_BYTES)
    if last_newline >= 0:
        return data[:last_newline], None
    return data[:MAX_HEAD_BYTES], None


def _parse_header_lines(lines: list[str]) -> Headers:
    fields: list[tuple[str, str]] = []
    for raw in lines:
        line = raw.rstrip("\r")
        if line[:1] in (" ", "\t"):
            if fields:  # obs-fold: continuation of the previous header value
                name, value = fields[-1]
                fields[-1] = (name, f"{value} {line.strip()}".strip())
            continue
        name, colon, value = line.partition(":")
        name = name.rstrip()
        if not colon or not name or " " in name or "\t" in name:
            continue
        fields.append((name.lower(), value.strip()))
        if len(fields) == MAX_HEADERS:
            break
    return tuple(fields)


def body_incomplete(buf: bytes) -> bool:
    """True when the head is cut, or its Content-Length announces more than we have."""
    return head_incomplete(parse_head(buf))


def head_incomplete(head: MessageHead | None) -> bool:
    """:func:`body_incomplete` of the bytes ``head`` was parsed from (``parse_head``'s
    answer, None included)."""
    if head is None or head.body is None:
        return True
    length = header(head.headers, "content-length")
    if length is None or not length.strip().isdigit():
        return False
    return len(head.body) < int(length)


class HttpParser(DeepParser):
    """A request's method, Host and User-Agent; a response's Server and digest realm.

    The ``http`` service follows Zeek's HTTP analyzer: nothing on a connection first seen
    without its SYN (Zeek ignores a partial connection's contents); on one of ``HTTP_PORTS``
    a request confirms it; on another port the server's HTTP reply to a request does (Zeek's
    DPD signatures need both sides); a reply that is not HTTP withdraws it. After a CONNECT
    answered 200 the flow is recognised afresh (TLS or SMTP through a proxy)."""

    rank = 20
    #: any method (a token of capitals): a first line that is not an HTTP request is passed on
    client_magic = tuple(bytes((letter,)) for letter in range(ord("A"), ord("Z") + 1))
    server_magic = (b"HTTP/",)

    def tcp(self, ctx: Context, flow: Flow, is_orig: bool, buf: bytes, ts: float) -> Verdict:
        if is_orig:
            # not an HTTP request after all (an RTSP "OPTIONS rtsp://... RTSP/1.0"): pass it on
            if not self._request(ctx, flow, buf):
                return Verdict.PASS
            return Verdict.MORE if flow.app and _CONNECT in flow.app else Verdict.DONE
        if flow.app is None or _REPLIED not in flow.app:  # the server's first bytes
            flow.app_set(_REPLIED, True)
            if not buf.startswith(b"HTTP/"):
                # Zeek: "not a http reply line", a violation that withdraws the service
                drop_service(flow, "http")
                return Verdict.DONE
            if _REQUESTED in flow.app and not tcp_partial(flow):  # type: ignore[operator]
                service(flow, "http")  # a reply to a request (Zeek's DPD needs both sides)
        if body_incomplete(buf):
            return Verdict.WAIT
        resp = parse_http_response(buf)
        tunnel = resp is not None and flow.app is not None and flow.app.pop(_CONNECT, None)
        if tunnel and resp is not None and resp.status == 200 and flow.app is not None:
            # a CONNECT tunnel: what follows is another protocol, recognised afresh as
            # Zeek's HTTP analyzer hands it to protocol detection
            flow.app.pop(OWNER, None)
            return Verdict.MORE
        if resp is not None:
            ctx.count("http_response")
            if resp.server:
                flow.app_set("server", resp.server)
                ctx.banner(flow, "http_server", resp.server)
            if resp.www_authenticate:
                flow.app_set("www_authenticate", resp.www_authenticate)
                ctx.banner(flow, "www_authenticate", resp.www_authenticate)
            self._description(ctx, flow, resp, buf)
        return Verdict.DONE

    @staticmethod
    def _description(ctx: Context, flow: Flow, resp: HttpResponse, buf: bytes) -> None:
        """A UPnP device description (the XML an SSDP LOCATION points to): what the device
        serving it says it is (manufacturer, modelName)."""
        if "xml" not in (header(resp.headers, "content-type") or "").lower():
            return
        head = parse_head(buf)
        if head is not None and head.body and UPNP_DEVICE_NS.encode() in head.body:
            observe_description(ctx, flow, head.body)

    @staticmethod
    def _request(ctx: Context, flow: Flow, buf: bytes) -> bool:
        """Read an HTTP request; False when ``buf`` does not start with one."""
        req = parse_http_request(buf)
        if req is None:
            return False
        ctx.count("http_request")
        flow.app_set(_REQUESTED, True)
        if req.method == "CONNECT":
            flow.app_set(_CONNECT, True)
        if flow.resp_p in HTTP_PORTS and not tcp_partial(flow):
            service(flow, "http")
        flow.app_set("http_method", req.method)
        if req.host:
            flow.app_set("http_host", req.host)
        if req.user_agent:
            flow.app_set("user_agent", req.user_agent)
        return True
