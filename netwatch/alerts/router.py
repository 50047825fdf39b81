"""De-duplication and suppression of alerts, on packet time (Zeek's notice ``suppress_for``).

The router sits between the rules and the sinks. The first alert of an identity ``(rule,
device, reached)`` (an incident: :attr:`~netwatch.alerts.model.Alert.reached` is the
platform, name, AS or network reached) goes out at once; repeats within
``alerts.suppress_s`` are only counted; the first repeat after the window goes out again
carrying how many times the identity was seen since it was last reported. A repeat more
severe than the incident's last report (a registration that starts streaming) is reported at
once (``escalated``). A report after the first carries ``incident`` in its evidence: the
peers seen (at most ``MAX_INCIDENT_PEERS``, the rest counted), since when, and the severity
it rose from. State is bounded (``max_identities``, oldest dropped first and counted), so a
flood of distinct peers cannot exhaust memory.

Incidents end: an identity not seen for ``alerts.resolve_s`` (packet time; live, packet
times are wall times, and the pipeline's flow-table sweep runs on a quiet link too) is
forgotten by :meth:`AlertRouter.expire` and handed to ``on_end`` as ONE
:class:`~netwatch.alerts.model.IncidentEnd` (its last report, first and last sighting,
sightings, worst severity, peers); :meth:`AlertRouter.end_all` ends every open incident at
the end of the input. A sighting after the end is a new incident, reported at once. The
time of a sighting is the alert's time, or later when the caller says when the flow was
last seen (:attr:`AlertRouter.seen_at`, set by the pipeline while a flow's rules run).
Identities are kept in the order they were last seen, so :meth:`expire` only looks at the
quiet end of the list; sightings reported out of time order (a flow ended by its idle
timeout after a busier one) can delay an end by that disorder (at most the flow idle
timeout). Without ``on_end`` (capture workers: their parent's router decides) incidents are
only forgotten.

Active flows are checked again while they last (``alerts.evaluate_active_s``); a repeat
from the same flow as the identity's last sighting is not counted again, so ``count`` is
the number of distinct flows. Every repeat, counted or not, is passed to ``on_repeat``
(the daemon uses it to keep the alert firing in Alertmanager).

Per-device bound (``alerts.max_per_device``, ``alerts.device_window_s``): a device's window
opens at its first emitted alert; once ``max_per_device`` alerts about it were emitted in the
window, its further alerts (new identities and re-reports alike) are not emitted but counted
(``device_capped``, and per rule in the device's window). A held-back new identity is not
remembered, so it can be reported in a later window; a held-back re-report is suppressed
for another ``suppress_s`` and its count carried to its next report. When a
device first reaches the bound in a window, ONE summary alert is emitted for it: rule
``alert_flood`` (:data:`FLOOD_RULE`; a sensor rule like ``capture_loss``, not a rule class),
the device's fields, no peer, severity the most severe of the device's alerts in the window,
evidence ``{max_per_device, device_window_s, window_start, emitted, suppressed, rules}``
where ``rules`` counts the device's alerts in the window by rule (emitted and suppressed
so far). So one scanning camera yields at most ``max_per_device`` + 1 alerts per window.
Device windows are bounded like identities (``max_identities``; oldest dropped, counted in
``dropped_devices``).

Config read: ``alerts.suppress_s``, ``alerts.resolve_s``, ``alerts.max_per_device``,
``alerts.device_window_s``.
Known limits: suppression state lives in memory (a restart reports each identity again once,
and opens every device's window again; an incident open at a restart never ends as such, its
next sighting opens it again); an identity forgotten at the ``max_identities`` bound does not
end (counted in ``dropped_identities``); the durable outbox belongs to delivery.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from netwatch.alerts.model import Alert, EndReason, IncidentEnd, RuleAlert, Severity, rfc3339

if TYPE_CHECKING:
    from netwatch.config.schema import AlertsConfig

Emit = Callable[[Alert, int], None]
Repeat = Callable[[Alert], None]
End = Callable[[IncidentEnd], None]

FLOOD_RULE = "alert_flood"
DEFAULT_MAX_PER_DEVICE = 50
DEFAULT_DEVICE_WINDOW_S = 3600.0
DEFAULT_RESOLVE_S = 3600.0


#: Peers an incident lists (the rest are counted in ``more_peers``).
MAX_INCIDENT_PEERS = 16


@dataclass(slots=True)
class _Seen:
    """When an alert key was last reported, and what was seen of it since."""

    reported_at: float
    count: int  # occurrences since the last report (the reported one included)
    flow_uid: str | None  # the flow of the last sighting
    severity: Severity  # as last reported: a more severe sighting is reported at once
    alert: Alert  # the last report (what the incident's end repeats)
    peers: dict[str, None] = field(default_factory=dict)  # the incident's peers, bounded
    more_peers: int = 0  # sightings of peers beyond MAX_INCIDENT_PEERS
    first_ts: float = 0.0
    last_ts: float = 0.0  # the last sighting
    sightings: int = 1  # distinct flows (and sensor alerts) over the whole incident
    worst: Severity = Severity.INFO  # the most severe sighting

    def sighted(self, alert: RuleAlert, when: float) -> None:
        """Note one sighting at ``when`` (a repeat from the flow last seen is not counted)."""
        if alert.flow_uid is None or alert.flow_uid != self.flow_uid:
            self.sightings += 1
        self.last_ts = max(self.last_ts, when)
        if alert.severity.rank < self.worst.rank:
            self.worst = alert.severity

    def ended(self, now: float, reason: EndReason) -> IncidentEnd:
        """The incident's end record."""
        return IncidentEnd(
            alert=self.alert,
            ts=max(now, self.last_ts),
            first_seen=self.first_ts,
            last_seen=self.last_ts,
            sightings=self.sightings,
            severity=self.worst,
            peers=tuple(self.peers),
            more_peers=self.more_peers,
            reason=reason,
        )

    def saw(self, alert: RuleAlert) -> None:
        """Note the peer of one sighting."""
        peer = alert.peer
        if not peer or peer in self.peers:
            return
        if len(self.peers) < MAX_INCIDENT_PEERS:
            self.peers[peer] = None
        else:
            self.more_peers += 1

    def evidence(self, alert: Alert, escalated_from: Severity | None) -> Alert:
        """``alert`` with the incident it belongs to in its evidence (peers seen, since
        when, and the severity it rose from), when there is more than its own sighting."""
        if len(self.peers) < 2 and escalated_from is None and not self.more_peers:
            return alert
        incident: dict[str, object] = {
            "peers": list(self.peers),
            "more_peers": self.more_peers,
            "first_seen": rfc3339(self.first_ts),
        }
        if escalated_from is not None:
            incident["escalated_from"] = escalated_from.value
        return replace(alert, evidence={**alert.evidence, "incident": incident})


@dataclass(slots=True)
class _DeviceWindow:
    """One device's alerts in its current window (the per-device bound)."""

    start: float
    worst: Severity
    emitted: int = 0
    suppressed: int = 0
    rules: dict[str, int] = field(default_factory=dict)

    def count(self, alert: RuleAlert) -> None:
        self.rules[alert.rule] = self.rules.get(alert.rule, 0) + 1
        if alert.severity.rank < self.worst.rank:
            self.worst = alert.severity


class AlertRouter:
    """Forwards new alert identities to ``emit(alert, count)``; suppresses repeats."""

    def __init__(
        self,
        emit: Emit,
        suppress_s: float = 3600.0,
        max_identities: int = 100_000,
        *,
        max_per_device: int = DEFAULT_MAX_PER_DEVICE,
        device_window_s: float = DEFAULT_DEVICE_WINDOW_S,
        resolve_s: float = DEFAULT_RESOLVE_S,
    ):
        self.emit = emit
        self.suppress_s = suppress_s
        self.resolve_s = resolve_s
        self.max_per_device = max_per_device
        self.device_window_s = device_window_s
        self._max = max_identities
        self._seen: OrderedDict[tuple[str, str, str], _Seen] = OrderedDict()
        self._devices: OrderedDict[str, _DeviceWindow] = OrderedDict()
        self.emitted = 0
        self.suppressed = 0
        self.dropped_identities = 0
        #: Alerts not emitted because their device reached ``max_per_device`` in its window.
        self.device_capped = 0
        #: ``alert_flood`` summaries emitted (one per device per window that hit the bound).
        self.device_summaries = 0
        #: Device windows forgotten to keep the state bounded (``max_identities``).
        self.dropped_devices = 0
        #: Incidents reported again at once because a sighting was more severe.
        self.escalated = 0
        #: Incidents ended (handed to ``on_end``), quiet ones and those open at end of input.
        self.ended = 0
        self.by_rule: dict[str, int] = {}
        self.on_repeat: Repeat | None = None
        #: Where ended incidents go (None: they are only forgotten).
        self.on_end: End | None = None
        #: When the flow whose alerts are being submitted was last seen (packet time), set
        #: by the caller around :meth:`submit`; None: the alert's own time.
        self.seen_at: float | None = None
        self._latest = float("-inf")  # the latest time seen (sightings and expire calls)

    @classmethod
    def of(cls, emit: Emit, alerts: AlertsConfig) -> AlertRouter:
        """A router with the ``alerts:`` settings."""
        router = cls(emit)
        router.configure(alerts)
        return router

    def configure(self, alerts: AlertsConfig) -> None:
        """Apply (re)loaded ``alerts:`` settings; the state is kept."""
        self.suppress_s = alerts.suppress_s
        self.resolve_s = alerts.resolve_s
        self.max_per_device = alerts.max_per_device
        self.device_window_s = alerts.device_window_s

    def submit(self, alert: RuleAlert) -> bool:
        """Route one alert; True when it was emitted, False when suppressed. A
        :class:`~netwatch.alerts.model.PendingAlert` is built only where more than its
        identity, time, severity, device, flow and peer is needed (a report, ``on_repeat``,
        a device's ``alert_flood`` summary): a repeat that is only counted never is."""
        key = alert.identity
        seen = self._seen.get(key)
        escalated_from: Severity | None = None
        when = alert.ts if self.seen_at is None else max(alert.ts, self.seen_at)
        self._latest = max(self._latest, when)
        if seen is not None:
            seen.saw(alert)
            seen.sighted(alert, when)
            self._seen.move_to_end(key)  # kept in the order last seen (expire)
        if seen is not None and alert.ts - seen.reported_at < self.suppress_s:
            if alert.severity.rank < seen.severity.rank:
                escalated_from = seen.severity  # the incident grew: report it now
            else:
                if alert.flow_uid is None or alert.flow_uid != seen.flow_uid:
                    seen.count += 1
                    seen.flow_uid = alert.flow_uid
                    self.suppressed += 1
                if self.on_repeat is not None:
                    self.on_repeat(alert.built())
                return False
        if not self._admit(alert):
            if seen is not None:  # a held-back re-report: next try one window later, counted
                seen.reported_at = alert.ts
                seen.count += 1
                seen.flow_uid = alert.flow_uid
            return False
        alert = alert.built()  # reported
        count = 1 if seen is None else seen.count
        if seen is None:
            if len(self._seen) >= self._max:
                self._seen.popitem(last=False)
                self.dropped_identities += 1
            seen = self._seen[key] = _Seen(
                alert.ts,
                1,
                alert.flow_uid,
                alert.severity,
                alert,
                first_ts=alert.ts,
                last_ts=when,
                worst=alert.severity,
            )
            seen.saw(alert)
        else:
            if escalated_from is not None:
                count += 1
                self.escalated += 1
            seen.reported_at = alert.ts
            seen.count = 1
            seen.flow_uid = alert.flow_uid
            seen.severity = alert.severity
        alert = seen.evidence(alert, escalated_from)
        seen.alert = alert
        self.emitted += 1
        self.by_rule[alert.rule] = self.by_rule.get(alert.rule, 0) + 1
        self.emit(alert, count)
        return True

    def latest(self) -> float:
        """The latest packet time the router knows (sightings and :meth:`expire` calls)."""
        return self._latest

    def expire(self, now: float) -> int:
        """End the incidents not seen for ``resolve_s`` before ``now`` (packet time; wall
        time on a quiet live link); returns how many ended."""
        self._latest = max(self._latest, now)
        n = 0
        while self._seen:
            key, seen = next(iter(self._seen.items()))
            if now - seen.last_ts < self.resolve_s:
                break
            del self._seen[key]
            self._end(seen.ended(now, EndReason.QUIET))
            n += 1
        return n

    def end_all(self, reason: EndReason = EndReason.END_OF_INPUT) -> int:
        """End every open incident (the input ended), at the latest time seen; returns how
        many ended."""
        seen_all, self._seen = list(self._seen.values()), OrderedDict()
        for seen in seen_all:
            self._end(seen.ended(self._latest, reason))
        return len(seen_all)

    def _end(self, end: IncidentEnd) -> None:
        if self.on_end is None:
            return
        self.ended += 1
        self.on_end(end)

    def _admit(self, alert: RuleAlert) -> bool:
        """The per-device bound: True when ``alert`` may be emitted (module docstring)."""
        window = self._window(alert)
        window.count(alert)
        if window.emitted < self.max_per_device:
            window.emitted += 1
            return True
        window.suppressed += 1
        self.device_capped += 1
        if window.suppressed == 1:
            self._summarise(alert.built(), window)
        return False

    def _window(self, alert: RuleAlert) -> _DeviceWindow:
        window = self._devices.get(alert.device)
        if window is not None and alert.ts - window.start < self.device_window_s:
            return window
        if window is None and len(self._devices) >= self._max:
            self._devices.popitem(last=False)
            self.dropped_devices += 1
        window = _DeviceWindow(alert.ts, alert.severity)
        self._devices[alert.device] = window
        self._devices.move_to_end(alert.device)
        return window

    def _summarise(self, alert: Alert, window: _DeviceWindow) -> None:
        summary = flood_alert(alert, window, self.max_per_device, self.device_window_s)
        self.device_summaries += 1
        self.emitted += 1
        self.by_rule[FLOOD_RULE] = self.by_rule.get(FLOOD_RULE, 0) + 1
        self.emit(summary, 1)

    def counters(self) -> dict[str, int]:
        """Every counter, by name (for the metrics collector)."""
        return {
            "emitted": self.emitted,
            "suppressed": self.suppressed,
            "dropped_identities": self.dropped_identities,
            "device_capped": self.device_capped,
            "device_summaries": self.device_summaries,
            "dropped_devices": self.dropped_devices,
            "escalated": self.escalated,
            "ended": self.ended,
        }

    def __len__(self) -> int:
        return len(self._seen)


def flood_alert(
    alert: Alert, window: _DeviceWindow, max_per_device: int, device_window_s: float
) -> Alert:
    """The ``alert_flood`` summary of a device that reached the bound (``alert``: the first
    alert about it that the bound held back)."""
    return Alert(
        ts=alert.ts,
        rule=FLOOD_RULE,
        severity=window.worst,
        device=alert.device,
        device_ip=alert.device_ip,
        device_mac=alert.device_mac,
        vendor=alert.vendor,
        direction=alert.direction,
        summary=(
            f"{alert.device} raised {max_per_device} alerts within {device_window_s:g} s; "
            f"its further alerts are only counted until {rfc3339(window.start + device_window_s)}"
        ),
        evidence={
            "max_per_device": max_per_device,
            "device_window_s": device_window_s,
            "window_start": rfc3339(window.start),
            "emitted": window.emitted,
            "suppressed": window.suppressed,
            "rules": dict(window.rules),
        },
    )
