"""What the rules look at: one camera end of an ended flow, with its peer and policy.

:func:`flow_facts` turns an ended flow and its flow record into one :class:`FlowFacts`
per camera end (a camera talking to a camera gives two). The peer's GeoIP answer and
site-locality are the flow record's own (:class:`~netwatch.flow.record.FlowEnds`: worked
out once per flow end); the peer's name is the one the camera asked for (SNI, Host, passive
DNS) when the camera is the originator.

Two derived facts about how the flow began, for the direction-sensitive rules:
:attr:`FlowFacts.icmp_error` (an ICMP error message, e.g. the port unreachable a camera
sends back for a late DNS answer: a reaction, not traffic the camera chose to send) and
:attr:`FlowFacts.mid_stream` (the flow was picked up after its start, or oriented by
Zeek's port rule, history ``^``: who opened it is a guess).

Rule options reach the rules here: :meth:`FlowFacts.options` gives a rule its options for
the camera's group, and :meth:`FlowFacts.alert` applies the group's severity override for
the rule to every alert it builds (so every rule gets it, before the detector folds a
flow's findings into one notification).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from netwatch.alerts.model import Alert, Direction, PendingAlert, Severity, reached_of
from netwatch.detect.devices import Device
from netwatch.detect.policy import Destination, Policies, Policy
from netwatch.enrich.geo import GeoInfo
from netwatch.flow.record import Enrichers, FlowEnds
from netwatch.flow.table import Flow
from netwatch.signatures.match import SignatureMatcher
from netwatch.signatures.model import PayloadSignature

if TYPE_CHECKING:
    from netwatch.rules.base import RuleOptions

OptionsT = TypeVar("OptionsT", bound="RuleOptions")

#: ICMP error message types (RFC 792 / RFC 4443): v4 destination unreachable, source
#: quench, redirect, time exceeded, parameter problem; every ICMPv6 type below 128.
ICMP4_ERRORS = frozenset({3, 4, 5, 11, 12})
ICMP6_ERROR_LIMIT = 128


class FlowFacts(NamedTuple):
    """One camera end of one ended flow (a named tuple: built for every camera end of every
    flow, about 1 µs cheaper than a frozen dataclass; read-only alike)."""

    record: Mapping[str, Any]  # the flow record (flow log fields)
    app: Mapping[str, Any]  # deep-parser results (sni, http_host, rtsp_media, server, ...)
    device: Device
    device_is_orig: bool
    peer: Destination
    peer_org: str | None
    peer_local: bool
    direction: Direction
    bytes_up: int  # payload bytes the camera sent
    bytes_down: int
    policy: Policy
    inventory_size: int  # cameras listed in config (0: zero-config)
    signatures: SignatureMatcher | None = None  # the seeds' matchers (names, ports)

    @property
    def icmp_error(self) -> bool:
        """An ICMP error message (unreachable, time exceeded, ...): a reaction, not egress."""
        rec = self.record
        proto, icmp_type = rec.get("ip_proto"), rec["id.orig_p"]
        if proto == 1:
            return icmp_type in ICMP4_ERRORS
        return proto == 58 and icmp_type < ICMP6_ERROR_LIMIT

    @property
    def mid_stream(self) -> bool:
        """The flow was oriented by a guess (``^``), or TCP began without a SYN."""
        history = str(self.record.get("history") or "")
        if history.startswith("^"):
            return True
        return self.record["proto"] == "tcp" and not history.startswith("S")

    def payload_signatures(self, rule: str) -> list[PayloadSignature]:
        """Payload signatures seen in this flow that support ``rule``."""
        return [sig for sig in self.app.get("signatures", ()) if sig.rule == rule]

    def options(self, rule: str, kind: type[OptionsT]) -> OptionsT:
        """Rule ``rule``'s options (of its class ``kind``) for the camera's group; the
        defaults when the detector resolved none for it."""
        found = self.policy.options.get(rule)
        return found if isinstance(found, kind) else kind()

    def alert(
        self,
        rule: str,
        severity: Severity,
        summary: str,
        evidence: Mapping[str, Any],
        *,
        peer: bool = True,
        subject: str | None = None,
    ) -> Alert:
        """An alert about this camera and peer, with this flow's identifiers (``subject``:
        what the incident is about, when the rule names it; see ``Alert.reached``).

        ``peer=False`` leaves the peer out (an alert about the device itself), so that
        de-duplication is per device rather than per device and peer. ``severity`` is the
        rule's choice; the group's ``severity`` option for ``rule``, when set, replaces it.
        """
        rec = self.record
        alert = Alert(
            ts=float(rec["ts"]),
            rule=rule,
            severity=self.policy.severity_of(rule, severity),
            device=self.device.name,
            device_ip=self.device.ip,
            device_mac=self.device.mac,
            vendor=self.device.vendor,
            peer_ip=rec["id.resp_h" if self.device_is_orig else "id.orig_h"],  # ip_text(peer)
            peer_port=self.peer.port,
            proto=self.peer.proto,
            direction=self.direction,
            peer_country=self.peer.country,
            peer_asn=self.peer.asn,
            peer_org=self.peer_org,
            peer_name=self.peer.name,
            service=rec.get("service"),
            summary=summary,
            flow_uid=rec.get("uid"),
            community_id=rec.get("community_id"),
            evidence={**evidence, **self.device.details()},
            group=self.policy.group,
            platform=evidence.get("platform"),
            subject=subject,
        )
        if peer:
            return alert
        return replace(
            alert,
            peer_ip=None,
            peer_port=None,
            proto=None,
            direction=Direction.LOCAL,
            peer_country=None,
            peer_asn=None,
            peer_org=None,
            peer_name=None,
            service=None,
        )

    def finding(
        self,
        rule: str,
        severity: Severity,
        summary: str,
        evidence: Mapping[str, Any],
        *,
        peer: bool = True,
        subject: str | None = None,
    ) -> PendingAlert:
        """What :meth:`alert` gives with the same arguments, built only when needed (the
        router counts most repeats of an incident from the few fields it reads: see
        :class:`~netwatch.alerts.model.PendingAlert`). Flow rules yield this."""
        rec = self.record
        device = self.device.name
        uid = rec.get("uid")
        if peer:
            peer_name = self.peer.name
            peer_ip = rec["id.resp_h" if self.device_is_orig else "id.orig_h"]
            reached = reached_of(
                subject,
                evidence.get("platform"),
                peer_name,
                self.direction,
                peer_ip,
                self.peer.asn,
                self.peer_org,
            )
            seen = peer_name or peer_ip or ""
        else:
            reached = reached_of(
                subject, evidence.get("platform"), None, Direction.LOCAL, None, None, None
            )
            seen = ""
        return PendingAlert(
            float(rec["ts"]),
            rule,
            self.policy.severity_of(rule, severity),
            device,
            uid,
            seen,
            reached,
            evidence.get("platform"),
            partial(self.alert, rule, severity, summary, evidence, peer=peer, subject=subject),
        )


_new_tuple = tuple.__new__
_NO_APP: Mapping[str, Any] = {}  # shared by the facts of flows no deep parser spoke about


def flow_facts(
    flow: Flow,
    record: Mapping[str, Any],
    ends: FlowEnds,
    enr: Enrichers,
    inventory_size: int,
    policies: Policies,
    signatures: SignatureMatcher | None = None,
) -> list[FlowFacts]:
    """The camera ends of this flow, as facts for the rules (``ends``: what the record
    building found out about the flow's ends, through ``enr`` and the detector's devices;
    ``inventory_size``: the devices' :attr:`~netwatch.detect.devices.Devices.inventory_size`)."""
    found: list[FlowFacts] = []
    if ends.orig_camera is not None:
        found.append(
            _end_facts(
                True,
                ends.orig_camera,
                flow,
                record,
                flow.resp_h,
                flow.resp_p,
                ends.resp_geo,
                ends.resp_local or enr.classifier.is_local(flow.resp_h),
                inventory_size,
                policies,
                signatures,
            )
        )
    if ends.resp_camera is not None:
        found.append(
            _end_facts(
                False,
                ends.resp_camera,
                flow,
                record,
                flow.orig_h,
                flow.orig_p,
                ends.orig_geo,
                ends.orig_local or enr.classifier.is_local(flow.orig_h),
                inventory_size,
                policies,
                signatures,
            )
        )
    return found


def _end_facts(
    is_orig: bool,
    device: Device,
    flow: Flow,
    record: Mapping[str, Any],
    peer_ip: bytes,
    peer_port: int,
    geo: GeoInfo,
    peer_local: bool,
    inventory_size: int,
    policies: Policies,
    signatures: SignatureMatcher | None,
) -> FlowFacts:
    """One camera end's facts (built positionally: this runs for every camera end)."""
    if peer_local:
        direction = Direction.LOCAL
    else:
        direction = Direction.OUTBOUND if is_orig else Direction.INBOUND
    orig_bytes, resp_bytes = int(record["orig_bytes"]), int(record["resp_bytes"])
    # FlowFacts(...) and Destination(...) with every field given, without their generated
    # __new__'s Python frames (the same tuples)
    peer = _new_tuple(
        Destination,
        (
            peer_ip,
            peer_port,
            str(record["proto"]),
            record.get("resp_name") if is_orig else None,
            geo.cc,
            geo.asn,
        ),
    )
    return _new_tuple(
        FlowFacts,
        (
            record,
            flow.app or _NO_APP,
            device,
            is_orig,
            peer,
            geo.org,
            peer_local,
            direction,
            orig_bytes if is_orig else resp_bytes,
            resp_bytes if is_orig else orig_bytes,
            policies.of(device.group),
            inventory_size,
            signatures,
        ),
    )
