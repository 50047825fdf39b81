"""Camera discovery-protocol parsers: who announces itself as a camera, and what it says.

Runs only on the packets the fast path routes here (UDP to or from a discovery port, and
frames of EtherType 0x8033); never per packet of a flow. Reads no configuration. Every parser
takes the transport payload, returns a ``DeviceIdentity`` or None, and never raises.

| protocol | port | module | function |
|---|---|---|---|
| Hikvision SADP (XML) | UDP 37020 | ``sadp`` | ``parse_sadp`` |
| Hikvision SADP layer 2 | EtherType 0x8033 | ``sadp`` | ``parse_sadp_l2`` |
| Dahua DHIP | UDP 37810 | ``dahua`` | ``parse_dhip`` |
| Dahua legacy | UDP 5050 | ``dahua`` | ``parse_dahua_5050`` |
| Xiongmai / XMEye | UDP 34569 | ``xiongmai`` | ``parse_xiongmai`` |
| ONVIF WS-Discovery | UDP 3702 | ``onvif`` | ``parse_onvif`` |
| D-Link setup (seed) | UDP 62976 | ``vendors`` | ``DlinkSetupDiscovery.parse`` |
| TP-Link TDP (seed) | UDP 20002 | ``vendors`` | ``TplinkTdpDiscovery.parse`` |
| Xiaomi miIO (seed) | UDP 54321 | ``vendors`` | ``MiioDiscovery.parse`` |

Each protocol registers itself (:class:`~netwatch.deep.discovery.base.DiscoveryProtocol`:
its port and parser); :data:`BUILTIN_DISCOVERY` is the explicit set routed to, and a test
fails on a protocol module missing from it.

``parse_discovery`` picks the parser by destination port, then by source port (replies to a
search go back to the client's ephemeral port, and SADP/Xiongmai replies often go from the
discovery port to the discovery port), and returns the first identity found. The formats and
their sources (``research/signatures.md`` keys) are in each module's docstring.

:class:`DiscoveryParser` is the registered deep parser: it claims these UDP ports (after
DNS's) and reports who announced itself as a camera.

Known limits: only UDP is routed (DHIP also runs on TCP 5000 and the HTTP port, not for
discovery); a protocol on a non-default port is not recognised.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from netwatch.deep.base import Context, DeepParser, service
from netwatch.deep.discovery.base import PROTOCOLS, DiscoveryProtocol
from netwatch.deep.discovery.dahua import (
    DahuaLegacyDiscovery,
    DhipDiscovery,
    parse_dahua_5050,
    parse_dhip,
)
from netwatch.deep.discovery.identity import DeviceIdentity
from netwatch.deep.discovery.onvif import OnvifDiscovery, parse_onvif
from netwatch.deep.discovery.sadp import SADP_ETHERTYPE, SadpDiscovery, parse_sadp, parse_sadp_l2
from netwatch.deep.discovery.vendors import DlinkSetupDiscovery, MiioDiscovery, TplinkTdpDiscovery
from netwatch.deep.discovery.xiongmai import XiongmaiDiscovery, parse_xiongmai

if TYPE_CHECKING:
    from netwatch.flow.table import Flow

__all__ = [
    "BUILTIN_DISCOVERY",
    "DISCOVERY_PORTS",
    "HELPER_MODULES",
    "PROTOCOLS",
    "SADP_ETHERTYPE",
    "DeviceIdentity",
    "DiscoveryParser",
    "parse_dahua_5050",
    "parse_dhip",
    "parse_discovery",
    "parse_onvif",
    "parse_sadp",
    "parse_sadp_l2",
    "parse_xiongmai",
]

Parser = Callable[[bytes], DeviceIdentity | None]

BUILTIN_DISCOVERY: tuple[type[DiscoveryProtocol], ...] = (
    SadpDiscovery,
    DhipDiscovery,
    DahuaLegacyDiscovery,
    XiongmaiDiscovery,
    OnvifDiscovery,
    DlinkSetupDiscovery,
    TplinkTdpDiscovery,
    MiioDiscovery,
)

#: Modules of this package that define no protocol (the walk test allows exactly these).
HELPER_MODULES = frozenset({"", "base", "identity", "jsonbody", "seeded", "xmlscan"})


def _ports(protocols: tuple[type[DiscoveryProtocol], ...]) -> dict[int, Parser]:
    """Port -> parser; two protocols on one port is a mistake, refused at import."""
    table: dict[int, Parser] = {}
    for proto in protocols:
        if proto.port in table:
            raise ValueError(f"discovery port {proto.port} is claimed twice ({proto.name})")
        table[proto.port] = proto.parse
    return table


DISCOVERY_PORTS: dict[int, Parser] = _ports(BUILTIN_DISCOVERY)


def parse_discovery(proto: str, sport: int, dport: int, payload: bytes) -> DeviceIdentity | None:
    """Parse a UDP discovery payload by port (destination first, then source); else None."""
    if proto.lower() != "udp":
        return None
    tried: Parser | None = None
    for port in (dport, sport):
        parser = DISCOVERY_PORTS.get(port)
        if parser is None or parser is tried:
            continue
        tried = parser
        identity = parser(payload)
        if identity is not None:
            return identity
    return None


class DiscoveryParser(DeepParser):
    """Camera discovery messages: the protocol as the service, repliers as cameras."""

    rank = 1  # after DNS: a DNS port on the other end wins
    udp_ports = frozenset(DISCOVERY_PORTS)

    def udp(self, ctx: Context, flow: Flow, is_orig: bool, data: bytes, ts: float) -> None:
        sport, dport = (flow.orig_p, flow.resp_p) if is_orig else (flow.resp_p, flow.orig_p)
        ident = parse_discovery("udp", sport, dport, data)
        if ident is None:
            ctx.count("discovery_unparsed")
            return
        ctx.count(f"discovery_{ident.protocol}")
        service(flow, ident.protocol)
        if ident.is_camera and ident.is_reply:
            if flow.app is None:
                flow.app = {}
            flow.app["discovery" if is_orig else "discovery_resp"] = ident
            host = flow.orig_h if is_orig else flow.resp_h
            ctx.camera(host, ident.vendor, ident.protocol, ident)
