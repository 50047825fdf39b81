"""Builds the flow record (Zeek conn.log fields + enrichment) for a flow that ended.

Runs once per flow, never per packet. Enrichment is cached per address by the components:
GeoIP country/ASN of the responder (and of a public originator, for inbound flows), the
name the device asked for (TLS SNI, then HTTP Host, then the passive DNS name known when
the flow began), the inventory device names of both ends, and the IEEE vendor of the local
end's MAC address. Field order is stable; absent values are ``null``.

:func:`flow_record_ends` also gives what it found out about each end (:class:`FlowEnds`:
site-locality, GeoIP answer, recognised camera), so that the rules work none of it out again
(issue 13: each per-flow fact once per flow end). Each end's site-locality is asked once and
passed on: the camera lookup takes it, and a site-local end (never a public address) gets
``GEO_NONE`` without a GeoIP lookup, so the GeoIP cache's counters count public-looking ends
only. The inventory is asked for a name only when it lists something.

The record itself is built by the compiled core when it is loaded (``_core.flow_record``,
from :func:`netwatch.core.record_builder`: address and MAC texts, rounded times, Zeek's
state/history for UDP, ICMP and TCP, Community ID, with the enrichment values passed in),
and by :func:`reference_record` otherwise (``NETWATCH_PURE=1``, no compiler) or for any flow
the compiled builder gives back; both give the same dict, key order and value types
included (tests/flow/test_record.py compares them on every record of the test captures).
"""

from __future__ import annotations

import _socket as socket  # no socket.py (enums, selectors) at start
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from netwatch import core
from netwatch.enrich.addrclass import AddressClassifier
from netwatch.enrich.geo import GEO_NONE, CachedGeo, GeoInfo
from netwatch.enrich.inventory import Device as InventoryDevice
from netwatch.enrich.inventory import Inventory
from netwatch.enrich.macvendor import MacVendors
from netwatch.enrich.names import best_name
from netwatch.flow.ids import community_id
from netwatch.flow.table import PROTO_TCP, PROTO_UDP, Flow
from netwatch.flow.tcpstate import Endpoint, PyEndpoint, conn_state

if TYPE_CHECKING:
    from netwatch.detect.devices import Device

CameraOf = Callable[[bytes, bytes | None, bool], "Device | None"]
"""(packed IP, MAC or None, site-local) of a flow end -> the camera when it is a recognised
one (site-local: the classifier's answer for the IP, which the caller has already)."""
CameraEndsOf = Callable[
    [bytes, bytes | None, bool, bytes, bytes | None, bool], "tuple[Device | None, Device | None]"
]
""":data:`CameraOf` for both ends of a flow in one call (originator's IP, MAC, site-local,
then the responder's) -> (originator's camera, responder's camera)."""


class FlowEnds(NamedTuple):
    """What the record building found out about the two ends of a flow (the rules' facts
    take it from here instead of working it out again)."""

    orig_camera: Device | None  # the recognised camera at the originator (None: not one)
    resp_camera: Device | None
    orig_local: bool  # in a configured local net (the record's local_orig)
    resp_local: bool
    orig_geo: GeoInfo  # the GeoIP answer for the originator's address
    resp_geo: GeoInfo


_new_tuple = tuple.__new__
_PROTO_NAMES = {PROTO_TCP: "tcp", PROTO_UDP: "udp", 1: "icmp", 58: "icmp"}
_ICMP = frozenset({1, 58})
_ntop = socket.inet_ntop
_INET, _INET6 = socket.AF_INET, socket.AF_INET6
#: The compiled record builder (None: the core is not loaded; then only the reference runs).
#: It works out a TCP flow's summary itself, as the reference's Endpoint.size does.
_build = core.record_builder(Flow, Endpoint) if Endpoint.size is PyEndpoint.size else None


@dataclass(frozen=True, slots=True)
class Enrichers:
    """The per-flow enrichment components (all cached per address)."""

    classifier: AddressClassifier
    geo: CachedGeo
    vendors: MacVendors
    inventory: Inventory
    #: Recognised cameras (inventory, vendor prefix, discovery) when detection runs, so
    #: camera ends are marked without an inventory too; None: the inventory alone.
    cameras: CameraOf | None = None
    #: ``inventory.lookup``, or None when the inventory lists nothing (zero-config: no
    #: lookup per flow end). Set from ``inventory`` (which does not change).
    listed: Callable[[bytes, bytes | None], InventoryDevice | None] | None = field(
        init=False, default=None
    )
    #: ``cameras`` for both ends in one call (None when ``cameras`` is): the owner's
    #: ``ends`` when ``cameras`` is a ``RecognisedCameras.device``, else ``cameras`` twice.
    camera_ends: CameraEndsOf | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        object.__setattr__(self, "listed", self.inventory.lookup if len(self.inventory) else None)
        object.__setattr__(self, "camera_ends", _camera_ends(self.cameras))


def _camera_ends(cameras: CameraOf | None) -> CameraEndsOf | None:
    """Both ends' cameras in one call: the owner's ``ends`` when ``cameras`` is the bound
    ``device`` of an object that has one (``RecognisedCameras``), else ``cameras`` asked for
    the originator, then the responder."""
    if cameras is None:
        return None
    owner = getattr(cameras, "__self__", None)
    both: CameraEndsOf | None = getattr(owner, "ends", None)
    if both is not None and cameras == getattr(owner, "device", None):
        return both

    def ends(
        orig_ip: bytes,
        orig_mac: bytes | None,
        orig_local: bool,
        resp_ip: bytes,
        resp_mac: bytes | None,
        resp_local: bool,
    ) -> tuple[Device | None, Device | None]:
        return cameras(orig_ip, orig_mac, orig_local), cameras(resp_ip, resp_mac, resp_local)

    return ends


def _udp_state(f: Flow) -> str:
    if f.o_pkts:
        return "SF" if f.r_pkts else "S0"
    return "SHR" if f.r_pkts else "OTH"


def _udp_history(f: Flow) -> str:
    """Zeek's UDP history: ``D``/``d`` for the first datagram of each side (empty ones too),
    in the order they came; a flipped flow (``^``, the only letter UDP keeps in ``hist``)
    began with the responder's datagram."""
    orig = "D" if f.o_pkts else ""
    resp = "d" if f.r_pkts else ""
    return "^" + resp + orig if f.hist else orig + resp


def transport_summary(f: Flow) -> tuple[int, int, int, str, str]:
    """(orig_bytes, resp_bytes, missed_bytes, conn_state, history) with Zeek semantics."""
    if f.tcp is not None:
        o, r = f.tcp
        history = "".join(f.hist or ())
        return o.size(r), r.size(o), o.missed + r.missed, conn_state(o, r, history), history
    if f.proto == PROTO_UDP:
        return f.o_bytes, f.r_bytes, 0, _udp_state(f), _udp_history(f)
    if f.proto in _ICMP:
        return f.o_bytes, f.r_bytes, 0, "OTH", ""
    return 0, 0, 0, "OTH", ""  # other IP protocols: Zeek does not size their payload


def flow_record_ends(f: Flow, enr: Enrichers) -> tuple[dict[str, Any], FlowEnds]:
    """The flow-log record of an ended flow, and what it found out about the flow's ends."""
    orig_h, resp_h, orig_mac, resp_mac = f.orig_h, f.resp_h, f.orig_mac, f.resp_mac
    site_local = enr.classifier.is_site_local
    local_orig = site_local(orig_h)
    local_resp = site_local(resp_h)
    camera_ends = enr.camera_ends
    if camera_ends is None:
        orig_cam = resp_cam = None
    else:  # originator first, then responder (the order the tally always saw them in)
        orig_cam, resp_cam = camera_ends(orig_h, orig_mac, local_orig, resp_h, resp_mac, local_resp)
    geo = enr.geo.lookup  # a site-local address is never public: no GeoIP answer to ask for
    resp_geo = GEO_NONE if local_resp else geo(resp_h)
    orig_geo = GEO_NONE if local_orig else geo(orig_h)
    local_mac = orig_mac if local_orig or not local_resp else resp_mac
    app = f.app
    if app is None:  # no deep parser spoke about this flow (most flows of a flood)
        service = sni = http_host = user_agent = server = dns_query = None
        name = f.name
        resp_name = name.rstrip(".").lower() if name else None  # best_name(None, None, name)
    else:
        services = app.get("service")
        service = ",".join(services) if services else None
        sni = app.get("sni")
        http_host = app.get("http_host")
        user_agent = app.get("user_agent")
        server = app.get("server")
        dns_query = app.get("dns_query")
        resp_name = best_name(sni, http_host, f.name)
    # each end's device name: the recognised camera's, else the inventory's (asked only
    # when it lists any)
    inventory = enr.listed
    orig_device = resp_device = None
    if orig_cam is not None:
        orig_device = orig_cam.name
    elif inventory is not None:
        listed = inventory(orig_h, orig_mac)
        orig_device = listed.name if listed is not None else None
    if resp_cam is not None:
        resp_device = resp_cam.name
    elif inventory is not None:
        listed = inventory(resp_h, resp_mac)
        resp_device = listed.name if listed is not None else None
    vendor = enr.vendors.vendor(local_mac) if local_mac else None
    # FlowEnds(...) without its generated __new__'s Python frame (the same tuple)
    ends = _new_tuple(FlowEnds, (orig_cam, resp_cam, local_orig, local_resp, orig_geo, resp_geo))
    # the record's values, in reference_record's argument order (None: a TCP flow's summary
    # is worked out by the builder)
    values = (
        f,
        None,
        service,
        local_orig,
        local_resp,
        resp_geo.cc,
        resp_geo.asn,
        resp_geo.org,
        orig_geo.cc,
        resp_name,
        orig_device,
        resp_device,
        vendor,
        sni,
        http_host,
        user_agent,
        server,
        dns_query,
    )
    if _build is not None:  # the compiled core: the same record, built in C
        record = _build(*values)
        if record is not None:
            return record, ends
    return reference_record(*values), ends


def reference_record(
    f: Flow,
    summary: tuple[int, int, int, str, str] | None,
    service: str | None,
    local_orig: bool,
    local_resp: bool,
    resp_cc: str | None,
    resp_asn: int | None,
    resp_org: str | None,
    orig_cc: str | None,
    resp_name: str | None,
    orig_device: str | None,
    resp_device: str | None,
    vendor: str | None,
    sni: str | None,
    http_host: str | None,
    user_agent: str | None,
    server: str | None,
    dns_query: str | None,
) -> dict[str, Any]:
    """The record of an ended flow from its enrichment values: the reference builder (the
    pure-Python path, and any flow the compiled ``core.record_builder()`` gives back, which
    takes the same arguments and must give the same dict, key order included).
    ``summary``: :func:`transport_summary` of a TCP flow if known (None: worked out here)."""
    orig_h, resp_h, orig_mac, resp_mac = f.orig_h, f.resp_h, f.orig_mac, f.resp_mac
    if f.tcp is None and f.proto == PROTO_UDP:  # transport_summary's UDP case, inlined
        orig_bytes, resp_bytes, missed = f.o_bytes, f.r_bytes, 0
        if f.o_pkts and not f.hist:  # the originator spoke first (most UDP flows)
            state, history = ("SF", "Dd") if f.r_pkts else ("S0", "D")
        else:
            state, history = _udp_state(f), _udp_history(f)
    else:
        if summary is None:
            summary = transport_summary(f)
        orig_bytes, resp_bytes, missed, state, history = summary
    first = f.first
    duration = (f.stop if f.stop >= 0 else f.last) - first  # Flow.duration
    record = {
        "ts": round(first, 6),
        "uid": f.uid,
        "id.orig_h": _ntop(_INET if len(orig_h) == 4 else _INET6, orig_h),  # ip_text
        "id.orig_p": f.orig_p,
        "id.resp_h": _ntop(_INET if len(resp_h) == 4 else _INET6, resp_h),
        "id.resp_p": f.resp_p,
        "proto": _PROTO_NAMES.get(f.proto, "unknown_transport"),
        "ip_proto": f.proto,
        "service": service,
        "duration": round(duration, 6) if duration else duration,  # 0.0 stays (one packet)
        "orig_bytes": orig_bytes,
        "resp_bytes": resp_bytes,
        "conn_state": state,
        "history": history,
        "local_orig": local_orig,
        "local_resp": local_resp,
        "missed_bytes": missed,
        "orig_pkts": f.o_pkts,
        "orig_ip_bytes": f.o_ipb,
        "resp_pkts": f.r_pkts,
        "resp_ip_bytes": f.r_ipb,
        "community_id": community_id(orig_h, resp_h, f.proto, f.orig_p, f.resp_p),
        "orig_l2_addr": orig_mac.hex(":") if orig_mac else None,  # mac_text
        "resp_l2_addr": resp_mac.hex(":") if resp_mac else None,
        "vlan": f.vlan if f.vlan >= 0 else None,
        "resp_cc": resp_cc,
        "resp_asn": resp_asn,
        "resp_org": resp_org,
        "orig_cc": orig_cc,
        "resp_name": resp_name,
        "orig_device": orig_device,
        "resp_device": resp_device,
        "vendor": vendor,
        "server_name": sni,
        "http_host": http_host,
        "user_agent": user_agent,
        "server": server,
        "dns_query": dns_query,
    }
    return record
