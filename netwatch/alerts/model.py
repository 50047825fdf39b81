"""The alert record (DESIGN.md contract): what a rule found, about which device and peer.

Rules build :class:`Alert` values; sinks serialise :meth:`Alert.record` (one JSON object
per line for the JSON-lines sink, and the payload every other sink is built from).

Identity (what de-duplication and incidents key on) is the behaviour, not the peer address:
``(rule, device, reached)`` where *reached* (:attr:`Alert.reached`) is what the rule says
the incident is about when it says (``subject``: a denied country), else the named cloud/P2P
platform when the rule named one, else the name seen on the wire, else the peer's AS
(``AS64500``, or its organisation when the number is unknown), else its network (/24, IPv6
/48) for a peer outside the site; a peer inside the site is its address. So the rotating
relays of one platform, or the addresses one CDN name answers from, are one incident.

Incidents end (:class:`IncidentEnd`): the router notices an identity not seen for
``alerts.resolve_s`` (or the end of the input) and hands on ONE end record for it: the
identity fields of its last report plus ``status: "ended"``, ``first_seen``/``last_seen``,
``sightings``, the incident's ``peers`` (bounded, ``more_peers`` counted), the worst severity
and ``ended_reason``. Firing records carry no ``status`` field (their shape predates
incidents ending; a record without ``status`` is firing, :func:`status_of`).

``site`` is the sensor's ``site.name`` (config), so the alerts of several sensors can be
told apart. Rules leave it None; the daemon stamps it (:meth:`Alert.at_site`) on every alert
it records and delivers. The record carries ``"site"`` only when it is set, so records
written without a site (``netwatch replay``) keep their shape. ``group`` is the camera's
group and ``platform`` the cloud/P2P platform a rule named; both are routing labels.
"""

from __future__ import annotations

import _socket as socket  # inet_pton/ntop without socket.py (its enums, selectors)
import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    """Alert severities, most severe first."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"

    @property
    def rank(self) -> int:
        """0 for critical ... 4 for info (lower is more severe)."""
        return _RANKS[self]

    def at_least(self, other: Severity) -> bool:
        """True when this severity is ``other`` or more severe."""
        return self.rank <= other.rank


_RANKS = {s: i for i, s in enumerate(Severity)}
_WORD_RANKS: dict[object, int] = {s.value: i for s, i in _RANKS.items()}


def rank_of(word: object) -> int:
    """The rank of a severity as a record writes it ('critical' 0 ... 'info' 4); anything
    else (a missing or unknown word from a file) ranks after them all."""
    return _WORD_RANKS.get(word, len(_RANKS))


class Status(StrEnum):
    """Where an incident is: firing (a notification about it), or ended."""

    FIRING = "firing"
    ENDED = "ended"


class EndReason(StrEnum):
    """Why an incident ended."""

    QUIET = "quiet"  # not seen for alerts.resolve_s
    END_OF_INPUT = "end_of_input"  # the capture files were read to their end


def status_of(record: Mapping[str, Any]) -> Status:
    """The record's status: ``ended`` when it says so, else firing."""
    return Status.ENDED if record.get("status") == Status.ENDED.value else Status.FIRING


class Direction(StrEnum):
    """Which way the traffic went, seen from the device."""

    OUTBOUND = "outbound"
    INBOUND = "inbound"
    LOCAL = "local"


def rfc3339(ts: float) -> str:
    """Packet time as RFC 3339 UTC with microseconds (``2026-01-15T09:00:00.000000Z``)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True, kw_only=True)
class Alert:
    """One finding of one rule. Field names are the alert record's (DESIGN.md)."""

    ts: float
    rule: str
    severity: Severity
    device: str
    device_ip: str
    summary: str
    direction: Direction = Direction.OUTBOUND
    device_mac: str | None = None
    vendor: str | None = None
    peer_ip: str | None = None
    peer_port: int | None = None
    proto: str | None = None
    peer_country: str | None = None
    peer_asn: int | None = None
    peer_org: str | None = None
    peer_name: str | None = None
    service: str | None = None
    flow_uid: str | None = None
    community_id: str | None = None
    evidence: Mapping[str, Any] = field(default_factory=dict)
    site: str | None = None
    group: str | None = None
    platform: str | None = None
    evidence_pcap: str | None = None
    evidence_sha256: str | None = None
    #: What the incident is about when the rule itself names it (``denied_country``: the
    #: denied country or AS, whichever of its networks the camera reached); else None.
    subject: str | None = None

    def at_site(self, site: str | None) -> Alert:
        """This alert from the sensor named ``site`` (the config's ``site.name``)."""
        return self if site == self.site else replace(self, site=site)

    def device_address(self) -> tuple[bytes, bytes | None] | None:
        """The device's (packed IP, MAC bytes or None), or None without a valid IP."""
        try:
            packed = ipaddress.ip_address(self.device_ip).packed
        except ValueError:
            return None
        mac = bytes.fromhex(self.device_mac.replace(":", "")) if self.device_mac else None
        return packed, mac

    @property
    def peer(self) -> str:
        """The peer as a person reads it: the name on the wire, else the address."""
        return self.peer_name or self.peer_ip or ""

    @property
    def reached(self) -> str:
        """What the device reached (or was reached from), as the identity sees it (see the
        module docstring and :func:`reached_of`)."""
        return reached_of(
            self.subject,
            self.platform,
            self.peer_name,
            self.direction,
            self.peer_ip,
            self.peer_asn,
            self.peer_org,
        )

    @property
    def identity(self) -> tuple[str, str, str]:
        """What de-duplication keys on: (rule, device, reached)."""
        return (self.rule, self.device, self.reached)

    def record(self, count: int = 1) -> dict[str, Any]:
        """The alert record as a JSON-ready dict (``count``: times seen in the window)."""
        head = {"site": self.site} if self.site is not None else {}
        return {
            **head,
            "ts": rfc3339(self.ts),
            "rule": self.rule,
            "severity": self.severity.value,
            "device": self.device,
            "device_ip": self.device_ip,
            "device_mac": self.device_mac,
            "vendor": self.vendor,
            "peer_ip": self.peer_ip,
            "peer_port": self.peer_port,
            "proto": self.proto,
            "direction": self.direction.value,
            "peer_country": self.peer_country,
            "peer_asn": self.peer_asn,
            "peer_org": self.peer_org,
            "peer_name": self.peer_name,
            "service": self.service,
            "group": self.group,
            "platform": self.platform,
            "reached": self.reached,
            "summary": self.summary,
            "flow_uid": self.flow_uid,
            "community_id": self.community_id,
            "count": count,
            "evidence": dict(self.evidence),
            **(
                {"evidence_pcap": self.evidence_pcap, "evidence_sha256": self.evidence_sha256}
                if self.evidence_pcap is not None
                else {}
            ),
        }

    def one_line(self) -> str:
        """The human form for the terminal and logs (the arrow follows the traffic)."""
        return line_of(self.record())

    def built(self) -> Alert:
        """This alert (what :meth:`PendingAlert.built` gives for one not built yet)."""
        return self


def reached_of(
    subject: str | None,
    platform: str | None,
    peer_name: str | None,
    direction: Direction,
    peer_ip: str | None,
    peer_asn: int | None,
    peer_org: str | None,
) -> str:
    """:attr:`Alert.reached` of an alert with these fields: the rule's subject, platform,
    name, AS, organisation, network; '' without a peer."""
    if subject:
        return subject
    if platform:
        return platform
    if peer_name:
        return peer_name
    if direction is Direction.LOCAL or peer_ip is None:
        return peer_ip or ""
    if peer_asn:
        return f"AS{peer_asn}"
    if peer_org:
        return peer_org
    return network_of(peer_ip)


class PendingAlert:
    """An alert a rule found, not built yet: the fields the router reads to count a
    suppressed repeat (each equal to the built alert's), and :meth:`built` for the rest.

    Most of a flow rule's findings repeat an incident the router only counts (a camera
    that reaches many addresses outside its allow-list: one ``unexpected_egress`` per
    flow); building the whole :class:`Alert` (23 fields, the device's details in its
    evidence) for each would be wasted. The router, :func:`~netwatch.alerts.incidents.fold`
    and the detector build it (once) wherever more than these fields is needed."""

    __slots__ = (
        "_alert",
        "_build",
        "device",
        "flow_uid",
        "identity",
        "peer",
        "platform",
        "rule",
        "severity",
        "ts",
    )

    def __init__(
        self,
        ts: float,
        rule: str,
        severity: Severity,
        device: str,
        flow_uid: str | None,
        peer: str,
        reached: str,
        platform: str | None,
        build: Callable[[], Alert],
    ) -> None:
        self.ts = ts
        self.rule = rule
        self.severity = severity
        self.device = device
        self.flow_uid = flow_uid
        self.peer = peer  # Alert.peer
        self.identity = (rule, device, reached)  # Alert.identity
        self.platform = platform  # Alert.platform (what a fold reads)
        self._build = build
        self._alert: Alert | None = None

    def built(self) -> Alert:
        """The alert (built on the first call)."""
        if self._alert is None:
            self._alert = self._build()
        return self._alert


#: What a flow rule yields: an alert, or one not built yet.
RuleAlert = Alert | PendingAlert


@dataclass(frozen=True, slots=True, kw_only=True)
class IncidentEnd:
    """One incident that ended: its last report and what the router knew of it."""

    alert: Alert  # the incident's last report (identity, camera, peer fields)
    ts: float  # when it was found ended (packet time)
    first_seen: float
    last_seen: float
    sightings: int  # distinct flows (and sensor alerts) that showed it
    severity: Severity  # the worst severity it had
    peers: tuple[str, ...] = ()  # the peers it reached, bounded by the router
    more_peers: int = 0  # peers beyond the bound, counted
    reason: EndReason = EndReason.QUIET

    @property
    def identity(self) -> tuple[str, str, str]:
        """The incident's identity (its alert's): (rule, device, reached)."""
        return self.alert.identity

    def at_site(self, site: str | None) -> IncidentEnd:
        """This end as reported by the sensor named ``site``."""
        return self if site == self.alert.site else replace(self, alert=self.alert.at_site(site))

    def record(self) -> dict[str, Any]:
        """The end record: the last report's record, at the end time and the worst
        severity, with ``status: ended`` and the incident's span, sightings and peers."""
        evidence = {k: v for k, v in self.alert.evidence.items() if k != "incident"}
        record = replace(self.alert, evidence=evidence).record(self.sightings)
        record["ts"] = rfc3339(self.ts)
        record["severity"] = self.severity.value
        record["status"] = Status.ENDED.value
        record["first_seen"] = rfc3339(self.first_seen)
        record["last_seen"] = rfc3339(self.last_seen)
        record["sightings"] = self.sightings
        record["peers"] = list(self.peers)
        record["more_peers"] = self.more_peers
        record["ended_reason"] = self.reason.value
        return record

    def one_line(self) -> str:
        """The human form (see :func:`line_of`)."""
        return line_of(self.record())


#: Prefix lengths of the network that stands for a peer with neither name nor AS.
NETWORK_PREFIX = {4: 24, 6: 48}


def network_of(address: str) -> str:
    """The /24 (IPv6: /48) holding ``address``, as text; the text itself if not an IP."""
    try:  # an IPv4 address in its canonical text (what the rules give) without ipaddress
        packed = socket.inet_pton(socket.AF_INET, address)
    except OSError:
        packed = b""
    if packed and socket.inet_ntop(socket.AF_INET, packed) == address:
        return socket.inet_ntop(socket.AF_INET, packed[:3] + b"\x00") + "/24"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    return str(ipaddress.ip_network(f"{ip}/{NETWORK_PREFIX[ip.version]}", strict=False))


def route_of(record: Mapping[str, Any]) -> str:
    """Camera and peer as a person reads them: ``camera -> peer CC`` outbound, ``peer CC ->
    camera`` inbound, the camera alone without a peer (never ``-> -``)."""
    device = str(record.get("device") or record.get("device_ip") or "?")
    peer = record.get("peer_name") or record.get("peer_ip")
    if not peer:
        return device
    where = f" {record['peer_country']}" if record.get("peer_country") else ""
    if record.get("direction") == Direction.INBOUND.value:
        return f"{peer}{where} -> {device}"
    return f"{device} -> {peer}{where}"


def grouped_tail(record: Mapping[str, Any]) -> str:
    """`` (+N more: rule reached; ...)`` naming the reports grouped into a notification
    (:mod:`netwatch.alerts.grouping`); '' when it carries one report."""
    grouped = (record.get("evidence") or {}).get("grouped") or ()
    if not grouped:
        return ""
    more = "; ".join(f"{g.get('rule')} {g.get('reached') or ''}".rstrip() for g in grouped)
    return f" (+{len(grouped)} more: {more})"


def line_of(record: Mapping[str, Any]) -> str:
    """One line for a person: ``[severity] rule camera -> peer CC: summary``, then ``(+N
    more: rule reached; ...)`` naming the reports grouped into the notification; the arrow
    points from the peer to the camera on inbound alerts, and there is none without a peer.
    An end record reads ``[severity] rule ENDED camera -> peer: summary (seen N times,
    first .. last; peers a, b +M more)``."""
    head = f"[{record.get('severity')}] {record.get('rule')}"
    if status_of(record) is not Status.ENDED:
        return f"{head} {route_of(record)}: {record.get('summary', '')}{grouped_tail(record)}"
    seen = record.get("sightings") or record.get("count") or 1
    span = f"{record.get('first_seen')} .. {record.get('last_seen')}"
    peers = ", ".join(str(p) for p in record.get("peers") or ())
    if record.get("more_peers"):
        peers += f" +{record['more_peers']} more"
    tail = f"; peers {peers}" if peers else ""
    return (
        f"{head} ENDED {route_of(record)}: {record.get('summary', '')} "
        f"(seen {seen} time{'' if seen == 1 else 's'}, {span}{tail})"
    )
