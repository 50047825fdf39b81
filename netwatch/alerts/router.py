"""De-duplication and suppression of alerts, on packet time (Zeek's notice ``suppress_for``).

The router sits between the rules and the sinks. The first alert of an identity
``(rule, device, peer)`` goes out at once; repeats within ``alerts.suppress_s`` are only
counted; the first repeat after the window goes out again carrying how many times the
identity was seen since it was last reported. State is bounded (``max_identities``, oldest
dropped first and counted), so a flood of distinct peers cannot exhaust memory.

Active flows are checked again while they last (``alerts.evaluate_active_s``); a repeat
from the same flow as the identity's last sighting is not counted again, so ``count`` is
the number of distinct flows. Every repeat, counted or not, is passed to ``on_repeat``
(the daemon uses it to keep the alert firing in Alertmanager).

Config read: ``alerts.suppress_s``. Known limit: suppression state lives in memory (a
restart reports each identity again once); the durable outbox belongs to delivery.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from netwatch.alerts.model import Alert

Emit = Callable[[Alert, int], None]
Repeat = Callable[[Alert], None]


@dataclass(slots=True)
class _Seen:
    reported_at: float
    count: int  # occurrences since the last report (the reported one included)
    flow_uid: str | None  # the flow of the last sighting


class AlertRouter:
    """Forwards new alert identities to ``emit(alert, count)``; suppresses repeats."""

    def __init__(self, emit: Emit, suppress_s: float = 3600.0, max_identities: int = 100_000):
        self.emit = emit
        self.suppress_s = suppress_s
        self._max = max_identities
        self._seen: OrderedDict[tuple[str, str, str], _Seen] = OrderedDict()
        self.emitted = 0
        self.suppressed = 0
        self.dropped_identities = 0
        self.by_rule: dict[str, int] = {}
        self.on_repeat: Repeat | None = None

    def submit(self, alert: Alert) -> bool:
        """Route one alert; True when it was emitted, False when suppressed."""
        key = alert.identity
        seen = self._seen.get(key)
        if seen is not None and alert.ts - seen.reported_at < self.suppress_s:
            if alert.flow_uid is None or alert.flow_uid != seen.flow_uid:
                seen.count += 1
                seen.flow_uid = alert.flow_uid
                self.suppressed += 1
            if self.on_repeat is not None:
                self.on_repeat(alert)
            return False
        count = 1 if seen is None else seen.count
        if seen is None:
            if len(self._seen) >= self._max:
                self._seen.popitem(last=False)
                self.dropped_identities += 1
            self._seen[key] = _Seen(alert.ts, 1, alert.flow_uid)
        else:
            seen.reported_at = alert.ts
            seen.count = 1
            seen.flow_uid = alert.flow_uid
            self._seen.move_to_end(key)
        self.emitted += 1
        self.by_rule[alert.rule] = self.by_rule.get(alert.rule, 0) + 1
        self.emit(alert, count)
        return True

    def __len__(self) -> int:
        return len(self._seen)
