"""Notification groups: one notification per camera per interval, Alertmanager's way.

The router (:mod:`netwatch.alerts.router`) decides which incident reports go out (a new
incident, a re-report after ``alerts.suppress_s``, an escalation); :class:`DeviceGroups`
decides when and together with what. A camera that starts misbehaving usually opens several
incidents within minutes (a cloud registration, a P2P server, NAT traversal, a resolver
abroad): an on-call person wants ONE message naming all of them, not five. So, on packet
time, like Alertmanager's ``group_by: [camera]``:

- the first report about a device waits ``alerts.group_wait_s`` for others to join it;
- then ONE notification goes out: the gravest report (among equals a flood summary, else the
  earliest) is the
  alert, every other report is listed in its evidence under ``grouped`` (each a whole
  alert record without the device fields: rule, severity, summary, reached, peer, count,
  evidence with anything folded into it), so nothing is hidden;
- later reports about the device are sent together every ``alerts.group_interval_s``;
- a newer report of an incident whose report still waits takes its place (the count adds
  up; an escalation says what it rose from in its ``incident`` evidence);
- except that a report graver than anything the device's notifications carried so far (an
  incident that started streaming) goes out after ``group_wait_s``, not the interval;
- a device whose last notification is ``group_interval_s`` old is forgotten (its next
  report waits ``group_wait_s`` again).

``group_wait_s: 0`` and ``group_interval_s: 0`` send every report at once, alone.
:func:`members` reads a notification record back as the reports it carries;
:func:`netwatch.alerts.incidents.findings` goes further (every finding, folded ones too).

Time is the latest packet time seen (reports' times and :meth:`DeviceGroups.tick` calls:
the pipeline's sweep, so a quiet link flushes too); :meth:`DeviceGroups.flush_all` sends
everything pending (end of input, shutdown). Nothing is ever dropped: the pending devices are
bounded (``max_devices``; beyond it the device pending longest is sent early, counted in
``early``), and a device's pending reports are bounded by the router's per-device bound
(``alerts.max_per_device`` per ``alerts.device_window_s``).

Config read: ``alerts.group_wait_s``, ``alerts.group_interval_s``.
Known limits: a restart sends what was pending at the stop (shutdown flushes); PagerDuty
gets one event per notification, keyed by its alert (the grouped reports resolve their own
keys, which never triggered: a no-op), so the page resolves when its alert's incident ends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from netwatch.alerts.model import Alert, Severity, rank_of
from netwatch.alerts.router import FLOOD_RULE

if TYPE_CHECKING:
    from netwatch.config.schema import AlertsConfig

Emit = Callable[[Alert, int], None]

#: One round of the checks of active flows (``alerts.evaluate_active_s``): a camera's reports
#: arrive as its flows end or at the next check, so a minute collects one round of them.
DEFAULT_GROUP_WAIT_S = 60.0
DEFAULT_GROUP_INTERVAL_S = 300.0
#: Record keys a grouped report shares with its notification (the device's), left out of it.
DEVICE_KEYS = frozenset({"site", "device", "device_ip", "device_mac", "vendor", "group"})
#: Of those, the ones that differ between the addresses of one device (IPv4, IPv6): a grouped
#: report keeps them when they are not its notification's.
ADDRESS_KEYS = frozenset({"device_ip", "device_mac"})


class Report:
    """One incident report waiting for its device's notification."""

    __slots__ = ("alert", "count")

    def __init__(self, alert: Alert, count: int) -> None:
        self.alert = alert
        self.count = count


@dataclass(slots=True)
class _Group:
    """One device's notification group."""

    since: float  # when the oldest pending report arrived
    pending: list[Report] = field(default_factory=list)
    last_sent: float | None = None
    worst_sent: Severity | None = None  # the gravest severity its notifications carried

    def due(self, wait: float, interval: float) -> float:
        """When the pending reports go out."""
        first = self.since + wait
        if self.last_sent is None or self._graver():
            return first
        return max(first, self.last_sent + interval)

    def _graver(self) -> bool:
        worst = self.worst_sent
        return worst is not None and any(r.alert.severity.rank < worst.rank for r in self.pending)


def _lead(reports: list[tuple[int, object]]) -> int:
    """Which of a device's reports, given as (severity rank, rule), leads its notification:
    the gravest; among equals the ``alert_flood`` summary, else the earliest."""
    return min(range(len(reports)), key=lambda i: (reports[i][0], reports[i][1] != FLOOD_RULE, i))


def notification(reports: list[Report]) -> tuple[Alert, int]:
    """One notification for a device's pending reports: the gravest report (among equals the
    device's ``alert_flood`` summary, else the earliest) with every other one listed in its
    evidence under ``grouped``."""
    head = _lead([(r.alert.severity.rank, r.alert.rule) for r in reports])
    lead = reports[head]
    if len(reports) == 1:
        return lead.alert, lead.count
    lead_record = lead.alert.record(lead.count)
    grouped = [
        _without_device(r.alert.record(r.count), lead_record)
        for i, r in enumerate(reports)
        if i != head
    ]
    alert = replace(lead.alert, evidence={**lead.alert.evidence, "grouped": grouped})
    return alert, lead.count


def _without_device(report: Mapping[str, Any], lead: Mapping[str, Any]) -> dict[str, Any]:
    """A grouped report: without its device's keys, but with its own address when that is
    not the lead's (one device, several addresses)."""
    return {
        k: v
        for k, v in report.items()
        if k not in DEVICE_KEYS or (k in ADDRESS_KEYS and v != lead.get(k))
    }


def members(record: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """The reports one notification record carries, each a whole alert record: its alert
    (without the ``grouped`` list), then each grouped report with the device's fields."""
    evidence = record.get("evidence") or {}
    if "grouped" not in evidence:
        yield dict(record)
        return
    grouped = evidence["grouped"]
    yield {**record, "evidence": {k: v for k, v in evidence.items() if k != "grouped"}}
    device = {k: v for k, v in record.items() if k in DEVICE_KEYS}
    for item in grouped:
        yield {**device, **item}  # a report's own address (a device has several) wins


def _rank(record: Mapping[str, Any]) -> int:
    return rank_of(record.get("severity"))


def _key(record: Mapping[str, Any]) -> tuple[Any, Any]:
    return (record.get("rule"), record.get("reached"))


def regroup(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """One notification record from whole report records of one device (:func:`members`'
    output, or a part of it a sink filtered): the gravest (a flood summary, else the
    earliest, among equals) leads, the others are grouped in its evidence."""
    head = _lead([(_rank(r), r.get("rule")) for r in reports])
    lead = dict(reports[head])
    others = [_without_device(r, lead) for i, r in enumerate(reports) if i != head]
    if others or "grouped" in (lead.get("evidence") or {}):
        evidence = {k: v for k, v in (lead.get("evidence") or {}).items() if k != "grouped"}
        lead["evidence"] = {**evidence, "grouped": others} if others else evidence
    return lead


def absorb(queued: Mapping[str, Any], later: Mapping[str, Any]) -> dict[str, Any]:
    """A queued notification record with a later one of the same alert identity folded in
    (a sink that was down): one record whose reports are the union of both, matched by
    (rule, what was reached); a report in both keeps the first of the two (the later one
    when it is graver: the incident grew meanwhile) with both counts added. Nothing of
    either is lost."""
    merged: dict[tuple[Any, Any], dict[str, Any]] = {}
    for report in [*members(queued), *members(later)]:
        key = _key(report)
        known = merged.get(key)
        if known is None:
            merged[key] = dict(report)
            continue
        count = int(known.get("count") or 1) + int(report.get("count") or 1)
        if _rank(report) < _rank(known):  # it grew meanwhile: the graver report says so
            known = merged[key] = dict(report)
        known["count"] = count
    return regroup(list(merged.values()))


def report_rules(alert: Alert) -> list[tuple[str, str]]:
    """(rule, severity) of every report a notification carries: its alert's, then each
    grouped one's (what per-rule counters count)."""
    rules = [(alert.rule, alert.severity.value)]
    for item in alert.evidence.get("grouped", ()):
        rules.append((str(item.get("rule")), str(item.get("severity"))))
    return rules


class DeviceGroups:
    """Collects the router's reports per device and emits one notification per group."""

    def __init__(
        self,
        emit: Emit,
        group_wait_s: float = DEFAULT_GROUP_WAIT_S,
        group_interval_s: float = DEFAULT_GROUP_INTERVAL_S,
        max_devices: int = 100_000,
    ) -> None:
        self.emit = emit
        self.group_wait_s = group_wait_s
        self.group_interval_s = group_interval_s
        self._max = max_devices
        #: The latest packet time the caller knows (the router's), when it is later than
        #: a report's own time (a flow's start); None: the reports' times alone.
        self.clock: Callable[[], float] | None = None
        self._groups: dict[str, _Group] = {}
        self._now = float("-inf")
        #: Notifications emitted, and reports that went out inside another's notification.
        self.notifications = 0
        self.grouped = 0
        #: Groups sent before they were due because ``max_devices`` devices were pending.
        self.early = 0

    @classmethod
    def of(cls, emit: Emit, alerts: AlertsConfig) -> DeviceGroups:
        """Groups with the ``alerts:`` settings."""
        groups = cls(emit)
        groups.configure(alerts)
        return groups

    def configure(self, alerts: AlertsConfig) -> None:
        """Apply (re)loaded ``alerts:`` settings; pending reports are kept."""
        self.group_wait_s = alerts.group_wait_s
        self.group_interval_s = alerts.group_interval_s

    @property
    def enabled(self) -> bool:
        """False when every report goes out at once, alone."""
        return self.group_wait_s > 0 or self.group_interval_s > 0

    def add(self, alert: Alert, count: int) -> None:
        """One report from the router (``emit``'s signature)."""
        if not self.enabled:
            self._send([Report(alert, count)])
            return
        now = alert.ts if self.clock is None else max(alert.ts, self.clock())
        self._now = max(self._now, now)  # other devices' groups wait for the next tick
        group = self._groups.get(alert.device)
        if group is None:
            if len(self._groups) >= self._max:
                self._evict()
            group = self._groups[alert.device] = _Group(since=self._now)
        elif not group.pending:
            group.since = self._now
        identity = alert.identity
        for i, waiting in enumerate(group.pending):
            if waiting.alert.identity == identity:  # the incident's newer report
                group.pending[i] = Report(alert, waiting.count + count)
                break
        else:
            group.pending.append(Report(alert, count))
        if group.due(self.group_wait_s, self.group_interval_s) <= self._now:
            self._flush(group)

    def tick(self, now: float) -> int:
        """Send the groups due at ``now`` (packet time) and forget the quiet ones; returns
        how many notifications went out."""
        if now <= self._now:
            return 0
        self._now = now
        sent = 0
        wait, interval = self.group_wait_s, self.group_interval_s
        for device, group in list(self._groups.items()):
            if group.pending:
                if group.due(wait, interval) <= now:
                    self._flush(group)
                    sent += 1
            elif group.last_sent is None or now - group.last_sent >= interval:
                del self._groups[device]
        return sent

    def flush_all(self) -> int:
        """Send everything pending now (end of input, shutdown); returns how many went out."""
        sent = 0
        for group in self._groups.values():
            if group.pending:
                self._flush(group)
                sent += 1
        return sent

    def pending(self) -> int:
        """Reports waiting for their notification."""
        return sum(len(g.pending) for g in self._groups.values())

    def _evict(self) -> None:
        """Make room: send the group pending longest (or forget a quiet one)."""
        quiet = next((d for d, g in self._groups.items() if not g.pending), None)
        if quiet is not None:
            del self._groups[quiet]
            return
        device = min(self._groups, key=lambda d: self._groups[d].since)
        self._flush(self._groups.pop(device))
        self.early += 1

    def _flush(self, group: _Group) -> None:
        reports, group.pending = group.pending, []
        group.last_sent = self._now
        worst = min((r.alert.severity for r in reports), key=lambda s: s.rank)
        if group.worst_sent is None or worst.rank < group.worst_sent.rank:
            group.worst_sent = worst
        self._send(reports)

    def _send(self, reports: list[Report]) -> None:
        alert, count = notification(reports)
        self.notifications += 1
        self.grouped += len(reports) - 1
        self.emit(alert, count)

    def counters(self) -> dict[str, int]:
        """Every counter, by name (for the metrics collector)."""
        return {"notifications": self.notifications, "grouped": self.grouped, "early": self.early}
