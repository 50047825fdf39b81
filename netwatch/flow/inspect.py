"""Hands the first payload packets of a flow to the deep parsers and keeps what they find.

The flow table calls :meth:`Inspector.payload` for at most ``deep.max_payload_packets``
payload packets per direction of each flow; this is the only place the deep parsers run.
DNS messages (UDP/TCP 53, mDNS 5353, LLMNR 5355) feed the passive DNS cache; camera
discovery messages (SADP, DHIP, Xiongmai, ONVIF WS-Discovery) tell who is a camera. The
client's first bytes are tried as a TLS ClientHello, an HTTP request (Host, User-Agent)
or an RTSP request; the server's as an HTTP or RTSP response (Server header, digest
realm, SDP media). A message split across TCP segments (a ClientHello over several
segments or TLS records, an RTSP reply whose SDP body follows in the next segment, a DNS
message over TCP) is accumulated per direction up to ``deep.max_hello_bytes`` and parsed
once complete. Results land on ``flow.app`` and in Zeek's ``service`` names.

Known limits: QUIC Initial packets are not decrypted (no SNI for QUIC); TCP segments are
not reordered (an out-of-order first segment is simply not recognised).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum

from netwatch.deep.discovery import DISCOVERY_PORTS, DeviceIdentity, parse_discovery
from netwatch.deep.dns import DnsMessage, parse_dns, resolve_chain
from netwatch.deep.http import (
    HTTP_METHODS,
    header,
    parse_head,
    parse_http_request,
    parse_http_response,
)
from netwatch.deep.rtp import rtp_audio_codec
from netwatch.deep.rtsp import looks_like_rtsp, parse_rtsp
from netwatch.deep.tls import NeedMore, looks_like_tls, parse_client_hello
from netwatch.enrich.names import PassiveDns
from netwatch.flow.table import PROTO_TCP, PROTO_UDP, Flow
from netwatch.signatures.model import PayloadSignature

DNS_PORTS = frozenset({53, 5353, 5355})
OnCamera = Callable[[bytes, str | None, str, DeviceIdentity | None], None]
BannerMatch = Callable[[str, str], str | None]
PayloadMatch = Callable[[str, int, bytes, str], PayloadSignature | None]
#: Payload signatures of these rules are sent by the vendor's devices themselves.
IDENTIFYING_RULES = frozenset({"cloud_registration", "cloud_enabled", "unmanaged_device"})


class Verdict(Enum):
    """What a parser says about the rest of a direction of a flow."""

    WAIT = "wait"  # the message is incomplete: keep the bytes, add the next segment
    MORE = "more"  # later messages may tell more (RTSP): keep inspecting
    DONE = "done"  # nothing more to learn: the direction's budget drops to zero


_WAIT, _MORE, _DONE = Verdict.WAIT, Verdict.MORE, Verdict.DONE
_HTTP_PREFIXES = tuple(f"{m} ".encode() for m in sorted(HTTP_METHODS))
_PENDING = ("_pending_o", "_pending_r")


class Inspector:
    """Runs the deep parsers on selected payloads; injected into the flow table."""

    def __init__(
        self,
        names: PassiveDns,
        max_hello_bytes: int = 16384,
        on_camera: OnCamera | None = None,
        banners: BannerMatch | None = None,
        payloads: PayloadMatch | None = None,
    ) -> None:
        self.names = names
        #: Called with (address, vendor, how) when a host shows it is a camera: a discovery
        #: reply, or a server banner / digest realm that a camera maker's firmware sends.
        self.on_camera = on_camera
        #: Banner lookup: (field, value) -> vendor or None (the seeds' device fingerprints).
        self.banners = banners
        #: Payload-signature lookup: (proto, server port, payload, direction) -> signature.
        self.payloads = payloads
        self.max_buffer = max_hello_bytes
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
                msg = parse_dns(data)
                if msg is None:
                    self._count("dns_unparsed")
                else:
                    self._dns_message(flow, is_orig, msg, ts)
            elif flow.orig_p in DISCOVERY_PORTS or flow.resp_p in DISCOVERY_PORTS:
                self._discovery(flow, is_orig, data)
            else:
                self._signature(flow, "udp", is_orig, data)
                codec = rtp_audio_codec(data)
                if codec is not None:
                    flow.app_set("rtp_audio_o" if is_orig else "rtp_audio_r", codec)
                # one look per direction for payload magic, then stop
                if is_orig:
                    flow.deep_o = 0
                else:
                    flow.deep_r = 0
            return
        if flow.proto != PROTO_TCP:
            return
        key = _PENDING[0 if is_orig else 1]
        pending = flow.app.pop(key, None) if flow.app is not None else None
        buf = data if pending is None else bytes(pending) + data
        if flow.resp_p == 53 or flow.orig_p == 53:
            verdict = _MORE if self._dns_tcp(flow, is_orig, buf, ts) else _WAIT
        elif is_orig:
            verdict = self._client(flow, buf)
        else:
            verdict = self._server(flow, buf)
        if verdict is not _WAIT:
            self._signature(flow, "tcp", is_orig, buf)
        if verdict is _WAIT and len(buf) < self.max_buffer:
            if flow.app is None:
                flow.app = {}
            flow.app[key] = buf
        elif verdict is _DONE:  # nothing more to learn from this direction
            if is_orig:
                flow.deep_o = 0
            else:
                flow.deep_r = 0

    def _signature(self, flow: Flow, proto: str, is_orig: bool, data: bytes) -> None:
        """Payload magic from the seeds (vendor registration, STUN, NAT-PMP, UPnP, ...)."""
        if self.payloads is None:
            return
        sig = self.payloads(proto, flow.resp_p, data, "client" if is_orig else "server")
        if sig is None:
            return
        self._count(f"signature_{sig.rule}")
        if sig.rule in IDENTIFYING_RULES and sig.vendor != "any" and self.on_camera is not None:
            # a device registering with its cloud is the sender; a device protocol (DVRIP,
            # SDK) is served by the device, whichever side the signature saw
            device = (
                flow.resp_h
                if sig.rule == "unmanaged_device"
                else (flow.orig_h if is_orig else flow.resp_h)
            )
            self.on_camera(device, sig.vendor, f"payload:{sig.id}", None)
        if flow.app is None:
            flow.app = {}
        found: list[PayloadSignature] = flow.app.setdefault("signatures", [])
        if sig not in found:
            found.append(sig)

    def _discovery(self, flow: Flow, is_orig: bool, data: bytes) -> None:
        """A camera discovery message: remember who announced itself as a camera."""
        sport, dport = (flow.orig_p, flow.resp_p) if is_orig else (flow.resp_p, flow.orig_p)
        ident = parse_discovery("udp", sport, dport, data)
        if ident is None:
            self._count("discovery_unparsed")
            return
        self._count(f"discovery_{ident.protocol}")
        _service(flow, ident.protocol)
        if ident.is_camera and ident.is_reply:
            if flow.app is None:
                flow.app = {}
            flow.app["discovery" if is_orig else "discovery_resp"] = ident
            if self.on_camera is not None:
                host = flow.orig_h if is_orig else flow.resp_h
                self.on_camera(host, ident.vendor, ident.protocol, ident)

    def end(self, flow: Flow) -> None:
        """Forget per-flow parser state (messages still being accumulated)."""
        if flow.app is not None:
            for key in _PENDING:
                flow.app.pop(key, None)

    # -- DNS ------------------------------------------------------------------------------

    def _dns_tcp(self, flow: Flow, is_orig: bool, buf: bytes, ts: float) -> bool:
        """DNS over TCP: 2-byte length-prefixed messages; False while one is incomplete."""
        off = 0
        while len(buf) >= off + 2:
            size = int.from_bytes(buf[off : off + 2], "big")
            if len(buf) < off + 2 + size:
                return False
            msg = parse_dns(buf[off + 2 : off + 2 + size])
            if msg is not None:
                self._dns_message(flow, is_orig, msg, ts)
            off += 2 + size
        return off == len(buf)

    def _dns_message(self, flow: Flow, is_orig: bool, msg: DnsMessage, ts: float) -> None:
        self._count("dns")
        _service(flow, "dns")
        if msg.qname:
            flow.app_set("dns_query", msg.qname)
        if msg.is_response and msg.answers:
            client = flow.resp_h if is_orig else flow.orig_h
            self.names.observe(client, resolve_chain(msg), ts)

    # -- TCP clients and servers ----------------------------------------------------------

    def _client(self, flow: Flow, buf: bytes) -> Verdict:
        """The client's first bytes: _WAIT for a ClientHello's rest, _MORE for RTSP, or _DONE."""
        if looks_like_tls(buf):
            result = parse_client_hello(buf)
            if result is NeedMore:
                return _WAIT
            if result is None:
                self._count("tls_unparsed")
                return _DONE
            self._count("tls_client_hello")
            _service(flow, "ssl")
            if result.sni:
                flow.app_set("sni", result.sni)
            if result.alpn:
                flow.app_set("alpn", result.alpn)
        elif buf.startswith(_HTTP_PREFIXES):
            req = parse_http_request(buf)
            if req is not None:
                self._count("http_request")
                _service(flow, "http")
                flow.app_set("http_method", req.method)
                if req.host:
                    flow.app_set("http_host", req.host)
                if req.user_agent:
                    flow.app_set("user_agent", req.user_agent)
        elif looks_like_rtsp(buf) and self._rtsp(flow, buf):
            return _MORE  # later requests (SETUP, ANNOUNCE) still tell something
        return _DONE

    def _server(self, flow: Flow, buf: bytes) -> Verdict:
        """The server's first bytes: _WAIT for an announced body, _MORE for RTSP, or _DONE."""
        is_http = buf.startswith(b"HTTP/")
        if not is_http and not buf.startswith(b"RTSP/"):
            return _DONE
        if _body_incomplete(buf):
            return _WAIT
        if is_http:
            resp = parse_http_response(buf)
            if resp is not None:
                self._count("http_response")
                _service(flow, "http")
                if resp.server:
                    flow.app_set("server", resp.server)
                    self._banner(flow, "http_server", resp.server)
                if resp.www_authenticate:
                    flow.app_set("www_authenticate", resp.www_authenticate)
                    self._banner(flow, "www_authenticate", resp.www_authenticate)
            return _DONE
        self._rtsp(flow, buf)
        return _MORE  # the DESCRIBE reply with its SDP may come after OPTIONS

    def _rtsp(self, flow: Flow, buf: bytes) -> bool:
        """An RTSP request or response: User-Agent or Server, and the SDP media types."""
        msg = parse_rtsp(buf)
        if msg is None:
            return False
        self._count("rtsp")
        _service(flow, "rtsp")
        if msg.user_agent:
            flow.app_set("user_agent", msg.user_agent)
        if msg.server:
            flow.app_set("server", msg.server)
            self._banner(flow, "rtsp_server", msg.server)
        _add_media(flow, msg.media)
        return True

    def _banner(self, flow: Flow, field: str, value: str) -> None:
        """A server banner that names a camera maker makes the server end a camera."""
        if self.banners is None or self.on_camera is None:
            return
        vendor = self.banners(field, value)
        if vendor is not None:
            self._count(f"banner_{field}")
            self.on_camera(flow.resp_h, vendor, f"banner:{field}", None)


def _body_incomplete(buf: bytes) -> bool:
    """True when the head is cut, or its Content-Length announces more than we have."""
    head = parse_head(buf)
    if head is None or head.body is None:
        return True
    length = header(head.headers, "content-length")
    if length is None or not length.strip().isdigit():
        return False
    return len(head.body) < int(length)


def _add_media(flow: Flow, media: tuple[str, ...]) -> None:
    """Union of the SDP media types (video, audio, ...) seen in the flow's RTSP messages."""
    if not media:
        return
    seen = flow.app.get("rtsp_media", ()) if flow.app is not None else ()
    merged = tuple(dict.fromkeys((*seen, *media)))
    if flow.app is None:
        flow.app = {}
    flow.app["rtsp_media"] = merged


def _service(flow: Flow, name: str) -> None:
    """Add a Zeek-style service name (comma-joined in the flow record)."""
    if flow.app is None:
        flow.app = {}
    services: list[str] = flow.app.setdefault("service", [])
    if name not in services:
        services.append(name)
