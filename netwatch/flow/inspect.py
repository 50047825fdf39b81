"""Hands the first payload packets of a flow to the deep parsers and keeps what they find.

The flow table calls :meth:`Inspector.payload` for at most ``deep.max_payload_packets``
payload packets per direction of each flow. This is the only place the deep parsers run:
DNS messages (UDP/TCP 53, mDNS 5353, LLMNR 5355) feed the passive DNS cache; the client's
first TCP bytes are tried as a TLS ClientHello (accumulated across segments up to
``deep.max_hello_bytes``, so a split hello still yields its SNI), an HTTP request (Host,
User-Agent) or an RTSP request; the server's first bytes as an HTTP or RTSP response
(Server header, SDP media). Results land on ``flow.app`` and in Zeek's ``service`` names.

Known limits: QUIC Initial packets are not decrypted (no SNI for QUIC); TCP segments are not
reordered (an out-of-order ClientHello is simply not recognised).
"""

from __future__ import annotations

from netwatch.deep.dns import DnsMessage, parse_dns, parse_dns_tcp, resolve_chain
from netwatch.deep.http import parse_http_request, parse_http_response
from netwatch.deep.rtsp import looks_like_rtsp, parse_rtsp
from netwatch.deep.tls import NeedMore, looks_like_tls, parse_client_hello
from netwatch.enrich.names import PassiveDns
from netwatch.flow.table import PROTO_TCP, PROTO_UDP, Flow

DNS_PORTS = frozenset({53, 5353, 5355})
_HTTP_METHODS = (
    b"GET ",
    b"POST ",
    b"HEAD ",
    b"PUT ",
    b"DELETE ",
    b"OPTIONS ",
    b"PATCH ",
    b"CONNECT ",
    b"M-SEARCH ",
    b"NOTIFY ",
    b"SUBSCRIBE ",
)


class Inspector:
    """Runs the deep parsers on selected payloads; injected into the flow table."""

    def __init__(self, names: PassiveDns, max_hello_bytes: int = 16384) -> None:
        self.names = names
        self.max_hello_bytes = max_hello_bytes
        self.parsed: dict[str, int] = {}

    def _count(self, what: str) -> None:
        self.parsed[what] = self.parsed.get(what, 0) + 1

    def payload(
        self, flow: Flow, is_orig: bool, frame: bytes, off: int, plen: int, ts: float
    ) -> None:
        """Inspect one payload (the captured part of it: a snaplen may have cut it)."""
        data = frame[off : off + plen]
        if not data:
            return
        if flow.proto == PROTO_UDP:
            if flow.orig_p in DNS_PORTS or flow.resp_p in DNS_PORTS:
                self._dns_udp(flow, is_orig, data, ts)
        elif flow.proto == PROTO_TCP:
            if flow.resp_p == 53 or flow.orig_p == 53:
                self._dns_tcp(flow, is_orig, data, ts)
            elif is_orig:
                self._client(flow, data)
            else:
                self._server(flow, data)

    def end(self, flow: Flow) -> None:
        """Forget per-flow parser state (a ClientHello still being accumulated)."""
        if flow.app is not None and "_hello" in flow.app:
            del flow.app["_hello"]

    # -- DNS ------------------------------------------------------------------------------

    def _dns_udp(self, flow: Flow, is_orig: bool, data: bytes, ts: float) -> None:
        msg = parse_dns(data)
        if msg is None:
            self._count("dns_unparsed")
            return
        self._dns_message(flow, is_orig, msg, ts)

    def _dns_tcp(self, flow: Flow, is_orig: bool, data: bytes, ts: float) -> None:
        for msg in parse_dns_tcp(data):
            self._dns_message(flow, is_orig, msg, ts)

    def _dns_message(self, flow: Flow, is_orig: bool, msg: DnsMessage, ts: float) -> None:
        self._count("dns")
        _service(flow, "dns")
        if msg.qname:
            flow.app_set("dns_query", msg.qname)
        if msg.is_response and msg.answers:
            client = flow.orig_h if not is_orig else flow.resp_h
            chain = resolve_chain(msg)
            self.names.observe(client, chain, ts)

    # -- TCP clients and servers ----------------------------------------------------------

    def _client(self, flow: Flow, data: bytes) -> None:
        app = flow.app
        pending = app.get("_hello") if app is not None else None
        if pending is not None or looks_like_tls(data):
            self._tls(flow, pending, data)
        elif data.startswith(_HTTP_METHODS):
            req = parse_http_request(data)
            if req is not None:
                self._count("http_request")
                _service(flow, "http")
                if req.host:
                    flow.app_set("http_host", req.host)
                if req.user_agent:
                    flow.app_set("user_agent", req.user_agent)
                flow.app_set("http_method", req.method)
        elif looks_like_rtsp(data):
            msg = parse_rtsp(data)
            if msg is not None:
                self._count("rtsp")
                _service(flow, "rtsp")
                if msg.user_agent:
                    flow.app_set("user_agent", msg.user_agent)
                if msg.media:
                    flow.app_set("rtsp_media", msg.media)

    def _tls(self, flow: Flow, pending: bytearray | None, data: bytes) -> None:
        buf = data if pending is None else bytes(pending) + data
        result = parse_client_hello(buf)
        if result is NeedMore and len(buf) < self.max_hello_bytes:
            if flow.app is None:
                flow.app = {}
            flow.app["_hello"] = bytearray(buf)
            return
        if flow.app is not None:
            flow.app.pop("_hello", None)
        if result is None or result is NeedMore:
            self._count("tls_unparsed")
            return
        self._count("tls_client_hello")
        _service(flow, "ssl")
        if result.sni:
            flow.app_set("sni", result.sni)
        if result.alpn:
            flow.app_set("alpn", result.alpn)

    def _server(self, flow: Flow, data: bytes) -> None:
        if data.startswith(b"HTTP/"):
            resp = parse_http_response(data)
            if resp is not None:
                self._count("http_response")
                _service(flow, "http")
                if resp.server:
                    flow.app_set("server", resp.server)
                if resp.www_authenticate:
                    flow.app_set("www_authenticate", resp.www_authenticate)
        elif data.startswith(b"RTSP/"):
            msg = parse_rtsp(data)
            if msg is not None:
                self._count("rtsp")
                _service(flow, "rtsp")
                if msg.server:
                    flow.app_set("server", msg.server)
                if msg.media:
                    flow.app_set("rtsp_media", msg.media)


def _service(flow: Flow, name: str) -> None:
    """Add a Zeek-style service name (comma-joined in the flow record)."""
    if flow.app is None:
        flow.app = {}
    services: list[str] = flow.app.setdefault("service", [])
    if name not in services:
        services.append(name)
