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

Which parser sees a payload is decided by the deep-parser registry, not here: each parser
in :data:`~netwatch.deep.BUILTIN_PARSERS` claims ports, first-bytes magic or unclaimed UDP
(:mod:`netwatch.deep.base`), and :class:`Inspector` looks the payload up in the tables
built from them (a port claim first, then the magic of the client's or server's side); the
parser a TCP flow's magic chose then sees both sides of it; a port's parser that finds
something else there (``Verdict.PASS``) leaves the payload to the magic. Connections a parser
announces (FTP data channels; at most ``MAX_EXPECTED``) get their service when their first
payload comes. Known limit: with several capture workers (``capture.workers``) an announced
connection that hashes to another worker is not named.
Payload signatures from the seeds run here on unclaimed UDP and on every complete TCP
message.

A UDP parser may keep a direction under inspection (``Verdict.MORE``: QUIC's ClientHello
spread over several Initial packets) or end it (``Verdict.DONE``).

Known limits: TCP segments are
not reordered (an out-of-order first segment is simply not recognised).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from netwatch.deep import BUILTIN_PARSERS
from netwatch.deep.base import OWNER, DeepParser, Dispatch, Verdict, service
from netwatch.deep.discovery import DeviceIdentity
from netwatch.deep.quic import QUIC_STATE
from netwatch.enrich.names import PassiveDns
from netwatch.flow.table import PROTO_TCP, PROTO_UDP, Flow
from netwatch.signatures.model import PayloadSignature

OnCamera = Callable[[bytes, str | None, str, DeviceIdentity | None], None]
BannerMatch = Callable[[str, str], str | None]
PayloadMatch = Callable[[str, int, bytes, str], PayloadSignature | None]
#: Payload signatures of these rules are sent by the vendor's devices themselves.
IDENTIFYING_RULES = frozenset({"cloud_registration", "cloud_enabled", "unmanaged_device"})

__all__ = ["BannerMatch", "Inspector", "OnCamera", "PayloadMatch", "Verdict"]

_WAIT, _DONE, _PASS, _MORE = Verdict.WAIT, Verdict.DONE, Verdict.PASS, Verdict.MORE
_PENDING = _PENDING_O, _PENDING_R = ("_pending_o", "_pending_r")
_WAY = ("server", "client")  # by is_orig: who sent the payload
MAX_EXPECTED = 1024


class Inspector:
    """Runs the deep parsers on selected payloads; injected into the flow table."""

    def __init__(
        self,
        names: PassiveDns,
        max_hello_bytes: int = 16384,
        on_camera: OnCamera | None = None,
        banners: BannerMatch | None = None,
        payloads: PayloadMatch | None = None,
        parsers: Iterable[type[DeepParser]] = BUILTIN_PARSERS,
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
        dispatch = Dispatch(parsers)
        #: The UDP ports some parser reads (fragmented datagrams to them are rebuilt).
        self.udp_ports = frozenset(dispatch.udp_ports)
        self._udp_ports = dispatch.udp_ports
        self._tcp_ports = dispatch.tcp_ports
        self._udp_other = tuple(parser.udp for parser in dispatch.udp_other)
        self._magic = (dispatch.server_magic, dispatch.client_magic)  # by is_orig
        #: announced connections (responder address, port) -> service (FTP data channels)
        self._expected: dict[tuple[bytes, int], str] = {}

    # -- the parsers' context (netwatch.deep.base.Context) ---------------------------------

    def count(self, what: str) -> None:
        parsed = self.parsed
        parsed[what] = parsed.get(what, 0) + 1

    def camera(
        self, host: bytes, vendor: str | None, how: str, ident: DeviceIdentity | None
    ) -> None:
        if self.on_camera is not None:
            self.on_camera(host, vendor, how, ident)

    def banner(self, flow: Flow, field: str, value: str) -> None:
        """A server banner that names a camera maker makes the server end a camera."""
        if self.banners is None or self.on_camera is None:
            return
        vendor = self.banners(field, value)
        if vendor is not None:
            self.count(f"banner_{field}")
            self.on_camera(flow.resp_h, vendor, f"banner:{field}", None)

    def expect(self, host: bytes, port: int, name: str) -> None:
        """Remember an announced connection (at most ``MAX_EXPECTED``, oldest dropped)."""
        expected = self._expected
        if len(expected) >= MAX_EXPECTED:
            del expected[next(iter(expected))]
        expected[(host, port)] = name

    # -- dispatch ---------------------------------------------------------------------------

    def payload(
        self, flow: Flow, is_orig: bool, frame: bytes, off: int, plen: int, ts: float
    ) -> None:
        """Inspect one payload (the captured part of it: a snaplen may have cut it)."""
        data = frame[off : off + plen]
        if not data:
            return
        if self._expected:
            self._announced(flow)
        resp_p = flow.resp_p
        payloads = self.payloads
        proto = flow.proto
        if proto == PROTO_UDP:
            ports = self._udp_ports
            resp, orig = ports.get(resp_p), ports.get(flow.orig_p)
            # the parser claiming either port (the lower rank when both are claimed)
            parser = orig if resp is None or (orig is not None and orig.rank < resp.rank) else resp
            if parser is not None:
                if parser.udp(self, flow, is_orig, data, ts) is _DONE:
                    if is_orig:
                        flow.deep_o = 0
                    else:
                        flow.deep_r = 0
                if resp is None and payloads is not None:
                    # claimed by the sender's port alone (a Mi Home device talks to its cloud
                    # from miIO's 54321 to UDP 80): the server port says nothing, the payload
                    # signatures may
                    sig = payloads("udp", resp_p, data, _WAY[is_orig])
                    if sig is not None:
                        self._found(flow, is_orig, sig)
                return
            if payloads is not None:
                sig = payloads("udp", resp_p, data, _WAY[is_orig])
                if sig is not None:
                    self._found(flow, is_orig, sig)
            more = False
            for look in self._udp_other:
                if look(self, flow, is_orig, data, ts) is _MORE:
                    more = True
            if not more:  # one look per direction for payload magic, then stop
                _stop(flow, is_orig)
            return
        if proto != PROTO_TCP:
            return
        key = _PENDING_O if is_orig else _PENDING_R
        app = flow.app
        if app is None:
            buf, owner = data, None
        else:
            pending = app.pop(key, None)
            buf = data if pending is None else bytes(pending) + data
            owner = app.get(OWNER)
        if owner is not None:
            verdict = owner.tcp(self, flow, is_orig, buf, ts)
        else:
            ports = self._tcp_ports
            resp, orig = ports.get(resp_p), ports.get(flow.orig_p)
            parser = orig if resp is None or (orig is not None and orig.rank < resp.rank) else resp
            verdict = _PASS if parser is None else parser.tcp(self, flow, is_orig, buf, ts)
            if verdict is _PASS:
                # no port claim, or the port's parser says this is something else (HTTP on
                # 22)
                verdict = _DONE
                for magic, candidate in self._magic[is_orig].get(buf[0], ()):
                    if buf.startswith(magic):
                        verdict = candidate.tcp(self, flow, is_orig, buf, ts)
                        if verdict is not _PASS:
                            flow.app_set(OWNER, candidate)
                            break
        if verdict is _WAIT:
            if len(buf) < self.max_buffer:
                if flow.app is None:
                    flow.app = {}
                flow.app[key] = buf
            return
        if payloads is not None:
            sig = payloads("tcp", resp_p, buf, _WAY[is_orig])
            if sig is not None:
                self._found(flow, is_orig, sig)
        if verdict is not _MORE:  # DONE or PASS: nothing more to learn from this direction
            if is_orig:
                flow.deep_o = 0
            else:
                flow.deep_r = 0

    def _announced(self, flow: Flow) -> None:
        """A flow some parser announced (an FTP data channel, an RTSP media channel)."""
        name = self._expected.pop((flow.resp_h, flow.resp_p), None)
        if name is not None:
            service(flow, name)

    def _signature(self, flow: Flow, proto: str, is_orig: bool, data: bytes) -> None:
        """Payload magic from the seeds (vendor registration, STUN, NAT-PMP, UPnP, ...):
        what :meth:`payload` does in line (a parser that claims a port may call it too: SSDP)."""
        if self.payloads is None:
            return
        sig = self.payloads(proto, flow.resp_p, data, _WAY[is_orig])
        if sig is not None:
            self._found(flow, is_orig, sig)

    def _found(self, flow: Flow, is_orig: bool, sig: PayloadSignature) -> None:
        """A payload signature matched: count it, name the device, keep it on the flow."""
        self.count(f"signature_{sig.rule}")
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

    def end(self, flow: Flow) -> None:
        """Forget per-flow parser state (messages still being accumulated)."""
        if flow.app is not None:
            for key in _PENDING:
                flow.app.pop(key, None)
            flow.app.pop(QUIC_STATE, None)
            flow.app.pop(OWNER, None)


def _stop(flow: Flow, is_orig: bool) -> None:
    """No more payloads of this direction go to the deep parsers."""
    if is_orig:
        flow.deep_o = 0
    else:
        flow.deep_r = 0
