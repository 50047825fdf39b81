"""De-duplication and suppression of alerts, on packet time (Zeek's notice ``suppress_for``).

The router sits between the rules and the sinks. The first alert of an identity
``(rule, device, peer)`` goes out at once; repeats within ``alerts.suppress_s`` are only
counted; the first repeat after the window goes out again carrying how many times the
identity was seen since it was last reported. State is bounded (``max_identities``, oldest
dropped first and counted), so a flood of distinct peers cannot exhaust memory.

Config read: ``alerts.suppress_s``. Known limit: suppression state lives in memory (a
restart reports each identity again once); the durable outbox belongs to delivery.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from netwatch.alerts.model import Alert

Emit = Callable[[Alert, int], None]


@dataclass(slots=True)
class _Seen:
    reported_at: float
    count: int  # occurrences since the last report (the reported one included)


class AlertRouter:
    """Forwards new alert identities to ``emit(alert, count)``; suppresses repeats."""

    def __init__(self, emit: Emit, suppress_s: float = 3600.0, max_identities: int = 100_000):
        self._emit = emit
        self.suppress_s = suppress_s
        self._max = max_identities
        self._seen: OrderedDict[tuple[str, str, str], _Seen] = OrderedDict()
        self.emitted = 0
        self.suppressed = 0
        self.dropped_identities = 0
        self.by_rule: dict[str, int] = {}

    def submit(self, alert: Alert) -> bool:
        """Route one alert; True when it was emitted, False when suppressed."""
        key = alert.identity
        seen = self._seen.get(key)
        if seen is not None and alert.ts - seen.reported_at < self.suppress_s:
            seen.count += 1
            self.suppressed += 1
            return False
        count = 1 if seen is None else seen.count
        if seen is None:
            if len(self._seen) >= self._max:
                self._seen.popitem(last=False)
                self.dropped_identities += 1
            self._seen[key] = _Seen(alert.ts, 1)
        else:
            seen.reported_at = alert.ts
            seen.count = 1
            self._seen.move_to_end(key)
        self.emitted += 1
        self.by_rule[alert.rule] = self.by_rule.get(alert.rule, 0) + 1
        self._emit(alert, count)
        return True

    def __len__(self) -> int:
        return len(self._seen)
