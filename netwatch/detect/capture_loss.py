"""Compatibility shim: the ``capture_loss`` rule now lives in :mod:`netwatch.rules.capture_loss`.

:class:`CaptureLossMonitor` keeps the old call shape (``CaptureLossMonitor(threshold)``,
``.check(now, counts)``) for existing callers; new code builds the sensor rules with
:func:`netwatch.rules.sensor_rules` and calls ``on_capture``. Reads no configuration.
"""

from __future__ import annotations

from collections.abc import Mapping

from netwatch.alerts.model import Alert
from netwatch.capture.source import CaptureCounts
from netwatch.rules.capture_loss import WINDOW_S, CaptureLoss

RULE = CaptureLoss.id

__all__ = ["RULE", "WINDOW_S", "CaptureLossMonitor"]


class CaptureLossMonitor:
    """The old name and signature of :class:`~netwatch.rules.capture_loss.CaptureLoss`."""

    def __init__(self, threshold: float, window_s: float = WINDOW_S, host: str | None = None):
        self.rule = CaptureLoss(threshold=threshold, window_s=window_s, host=host)

    @property
    def threshold(self) -> float:
        return self.rule.threshold

    @property
    def window_s(self) -> float:
        return self.rule.window_s

    @property
    def host(self) -> str:
        return self.rule.host

    def check(self, now: float, counts: Mapping[str, CaptureCounts]) -> list[Alert]:
        """Alerts for the interfaces whose last full window lost too much."""
        return self.rule.on_capture(now, counts)
