"""DHCP deep parser: who a client says it is, and which resolvers the server hands out.

Claims UDP 67 and 68 (either end). From a client message (BOOTREQUEST: DISCOVER, REQUEST,
INFORM) it reads the client hardware address (``chaddr``), the host name (option 12), the
vendor class (option 60) and the parameter request list (option 55, kept as a fingerprint
``"<OUI>|<option 60>|<55 as 1,3,6,...>"``), and matches them against the LAN fingerprints
of ``seeds/device_fingerprints.yaml`` (fields ``dhcp_hostname``, ``dhcp_vendor_class``,
``dhcp_fingerprint``). A camera match is reported for the client's MAC (a 6-byte host key:
the client has no address yet) and, once the server's ACK gives it (``yiaddr``), for its
address too; a weak match is reported as a hint. From a server reply (BOOTREPLY: OFFER,
ACK) it reads the resolvers (option 6) and reports each as ``dhcp_resolver``
(:attr:`netwatch.detect.devices.Devices.dhcp_resolvers`).

Reads no configuration; never raises on hostile input. Known limits: a snaplen-cut message
keeps only the options that fit (the Xiaomi captures' 150-byte frames keep none); option
overloading (52: options in ``sname``/``file``) is not followed; DHCPv6 is not parsed;
at most ``MAX_PENDING`` client identities wait for their ACK (oldest dropped).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from netwatch.deep.base import Context, DeepParser, service
from netwatch.deep.discovery.identity import DeviceIdentity, clean_text, lan_identity
from netwatch.signatures.lan import RESOLVER_HOW, lan_matcher

if TYPE_CHECKING:
    from netwatch.flow.table import Flow

MAGIC_COOKIE = b"\x63\x82\x53\x63"
FIXED_LEN = 236  # the BOOTP header before the cookie
BOOTREQUEST, BOOTREPLY = 1, 2
OPT_PAD, OPT_END = 0, 255
OPT_DNS, OPT_HOSTNAME, OPT_MSG_TYPE, OPT_PRL, OPT_VENDOR_CLASS = 6, 12, 53, 55, 60
MSG_ACK = 5
MAX_RESOLVERS_PER_MESSAGE = 8
MAX_PENDING = 256

_HEADER = struct.Struct("!BBBB4sHH4s4s4s4s16s")


@dataclass(frozen=True, slots=True)
class DhcpMessage:
    """The parts of one DHCP message netwatch reads."""

    op: int
    msg_type: int | None
    chaddr: bytes  # 6 bytes (Ethernet), else empty
    yiaddr: bytes  # 4 bytes, 0.0.0.0 when none
    hostname: str | None
    vendor_class: str | None
    prl: tuple[int, ...]
    resolvers: tuple[bytes, ...]

    def fingerprint(self) -> str:
        """``<OUI>|<vendor class>|<request list>``: the seeds' ``dhcp_fingerprint``."""
        oui = ":".join(f"{b:02X}" for b in self.chaddr[:3])
        prl = ",".join(str(code) for code in self.prl)
        return f"{oui}|{self.vendor_class or ''}|{prl}"

    def lan_pairs(self) -> list[tuple[str, str]]:
        pairs = [("dhcp_fingerprint", self.fingerprint())]
        if self.hostname:
            pairs.append(("dhcp_hostname", self.hostname))
        if self.vendor_class:
            pairs.append(("dhcp_vendor_class", self.vendor_class))
        return pairs


def parse_dhcp(payload: bytes) -> DhcpMessage | None:
    """The message in a UDP payload, or None when it is not a (readable) DHCP message."""
    if len(payload) < FIXED_LEN + len(MAGIC_COOKIE):
        return None
    op, htype, hlen, _hops, _xid, _secs, _flags, _ci, yi, _si, _gi, chaddr = _HEADER.unpack_from(
        payload
    )
    if op not in (BOOTREQUEST, BOOTREPLY) or payload[FIXED_LEN : FIXED_LEN + 4] != MAGIC_COOKIE:
        return None
    options = _options(payload, FIXED_LEN + 4)
    msg_type = options.get(OPT_MSG_TYPE, b"")
    dns = options.get(OPT_DNS, b"")
    return DhcpMessage(
        op=op,
        msg_type=msg_type[0] if len(msg_type) == 1 else None,
        chaddr=chaddr[:6] if htype == 1 and hlen == 6 else b"",
        yiaddr=yi,
        hostname=_text(options.get(OPT_HOSTNAME)),
        vendor_class=_text(options.get(OPT_VENDOR_CLASS)),
        prl=tuple(options.get(OPT_PRL, b"")),
        resolvers=tuple(
            dns[i : i + 4] for i in range(0, min(len(dns), 4 * MAX_RESOLVERS_PER_MESSAGE) - 3, 4)
        ),
    )


def _options(payload: bytes, off: int) -> dict[int, bytes]:
    """Option code -> value (the first of each code); stops at END or a cut option."""
    found: dict[int, bytes] = {}
    end = len(payload)
    while off < end:
        code = payload[off]
        if code == OPT_END:
            break
        if code == OPT_PAD:
            off += 1
            continue
        if off + 2 > end:
            break
        size = payload[off + 1]
        value = payload[off + 2 : off + 2 + size]
        if len(value) < size:
            break
        found.setdefault(code, value)
        off += 2 + size
    return found


def _text(value: bytes | None) -> str | None:
    if not value:
        return None
    return clean_text(value.rstrip(b"\x00").decode("latin-1"))


class DhcpParser(DeepParser):
    """DHCP: client identity (host name, vendor class, request list) and resolvers."""

    rank = 2
    udp_ports = frozenset({67, 68})

    def __init__(self) -> None:
        #: chaddr -> the camera identity its last client message showed (awaiting the ACK)
        self._pending: dict[bytes, tuple[str, DeviceIdentity]] = {}

    def udp(self, ctx: Context, flow: Flow, is_orig: bool, data: bytes, ts: float) -> None:
        msg = parse_dhcp(data)
        if msg is None:
            ctx.count("dhcp_unparsed")
            return
        ctx.count("dhcp")
        service(flow, "dhcp")
        if msg.op == BOOTREQUEST:
            self._client(ctx, msg)
        else:
            self._server(ctx, msg)

    def _client(self, ctx: Context, msg: DhcpMessage) -> None:
        if len(msg.chaddr) != 6:
            return
        mac = ":".join(f"{b:02x}" for b in msg.chaddr)
        for hit in lan_matcher().match_all(msg.lan_pairs()):
            how, ident = hit.how, lan_identity("dhcp", hit, mac, None)
            ctx.camera(msg.chaddr, hit.vendor, how, ident)
            if hit.camera:
                if len(self._pending) >= MAX_PENDING:
                    self._pending.pop(next(iter(self._pending)))
                self._pending[msg.chaddr] = (how, ident)

    def _server(self, ctx: Context, msg: DhcpMessage) -> None:
        for addr in msg.resolvers:
            if addr != b"\x00\x00\x00\x00":
                ctx.camera(addr, None, RESOLVER_HOW, None)
        pending = self._pending.get(msg.chaddr)
        if msg.msg_type == MSG_ACK and pending is not None and msg.yiaddr != b"\x00" * 4:
            how, ident = pending
            ctx.camera(msg.yiaddr, ident.vendor, how, ident)
