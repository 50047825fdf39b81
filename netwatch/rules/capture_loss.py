"""``capture_loss``: the sensor itself loses packets beyond a threshold (a sensor rule).

Detects: in a window of ``WINDOW_S`` seconds (wall time), an interface's dropped packets
(kernel ring plus interface counters) exceed ``capture.loss_threshold`` (default 1 %) of
what reached the host, i.e. ``dropped / (received + dropped)``. A lossy sensor misses
flows, so every other rule's silence is worth less: the alert says how much was lost where.
Each interface is its own identity (device = the interface name), suppressed like any alert.
Fed by the capture counters (:meth:`CaptureLoss.on_capture`), never by flows.

Config read: ``capture.loss_threshold``. No rule options (``rules.capture_loss`` is an
error): a sensor rule is about the sensor, not a camera group. Known false positives: a
burst right after start (the kernel ring filling while GeoIP data loads) can trip the first
window; a lossy mirror port (the switch dropping mirrored traffic) is invisible here, as it
never reaches the host.
"""

from __future__ import annotations

import _socket as socket  # no socket.py (enums, selectors) at start
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Self

from netwatch.alerts.model import Alert, Direction, Severity
from netwatch.rules.base import RuleContext, SensorRule

if TYPE_CHECKING:
    from netwatch.capture.source import CaptureCounts
    from netwatch.config import Config

WINDOW_S = 60.0
DEFAULT_THRESHOLD = 0.01


@dataclass(slots=True)
class _Last:
    """The capture counters at the last check."""

    at: float
    received: int
    dropped: int


class CaptureLoss(SensorRule):
    """Turns per-interface capture counters into ``capture_loss`` alerts (module docstring)."""

    def __init__(
        self,
        context: RuleContext | None = None,
        *,
        threshold: float = DEFAULT_THRESHOLD,
        window_s: float = WINDOW_S,
        host: str | None = None,
    ) -> None:
        super().__init__(context)
        self.threshold = threshold
        self.window_s = window_s
        self.host = host or socket.gethostname()
        self._last: dict[str, _Last] = {}

    @classmethod
    def from_config(cls, cfg: Config) -> Self:
        return cls(threshold=cfg.capture.loss_threshold)

    def on_capture(self, now: float, counts: Mapping[str, CaptureCounts]) -> list[Alert]:
        """Alerts for the interfaces whose last full window lost too much."""
        alerts = []
        for name, c in counts.items():
            dropped = c.dropped_kernel + c.dropped_interface
            last = self._last.get(name)
            if last is None:
                self._last[name] = _Last(now, c.received, dropped)
                continue
            if now - last.at < self.window_s:
                continue
            d_recv, d_drop = c.received - last.received, dropped - last.dropped
            self._last[name] = _Last(now, c.received, dropped)
            total = d_recv + d_drop
            if d_drop > 0 and total > 0 and d_drop / total > self.threshold:
                alerts.append(self._alert(now, name, d_recv, d_drop, now - last.at))
        return alerts

    def _alert(self, now: float, iface: str, received: int, dropped: int, span: float) -> Alert:
        share = dropped / (received + dropped)
        return Alert(
            ts=now,
            rule=self.id,
            severity=Severity.HIGH,
            device=iface,
            device_ip="",
            direction=Direction.LOCAL,
            summary=(
                f"netwatch on {self.host} lost {share:.1%} of the packets on {iface} "
                f"in the last {span:.0f} s ({dropped:,} dropped, {received:,} captured)"
            ),
            evidence={
                "interface": iface,
                "sensor": self.host,
                "dropped": dropped,
                "received": received,
                "loss_ratio": round(share, 6),
                "window_s": round(span, 3),
                "threshold": self.threshold,
            },
        )
