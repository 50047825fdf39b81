"""``new_destination``: after its learning period, a camera talks to a destination it never
used before.

Each camera's baseline of (destination, port, proto) is learned for ``learning.period_s``
from when the camera is first seen (default 7 days) and kept in SQLite in the state
directory (see :mod:`netwatch.detect.baseline`). After that, a destination outside the
baseline is reported once and then becomes known. The destination is the name the camera
asked for, or the peer's /24 (/48) network. Evidence: the destination key, port, proto,
when learning ended. Known false positives: firmware updates and changed cloud hosts;
each alerts once. To relearn a camera, delete its rows (or the database) while netwatch
is stopped.
"""

from __future__ import annotations

from collections.abc import Iterator

from netwatch.alerts.model import Alert, Severity
from netwatch.detect.baseline import destination_of
from netwatch.detect.facts import FlowFacts
from netwatch.rules.base import Rule


class NewDestination(Rule):
    """A camera, past its learning period, reaches a destination outside its baseline."""

    def on_flow_end(self, facts: FlowFacts) -> Iterator[Alert]:
        baseline = self.context.baseline if self.context is not None else None
        if baseline is None or not facts.device_is_orig:
            return
        dest = destination_of(facts.peer.ip, facts.peer.name)
        ts = float(facts.record["ts"])
        if not baseline.observe(facts.device.name, dest, facts.peer.port, facts.peer.proto, ts):
            return
        yield facts.alert(
            self.id,
            Severity.MEDIUM,
            f"{facts.device.name} reached a new destination {dest} on "
            f"{facts.peer.proto}/{facts.peer.port} after its learning period",
            {"destination": dest, "learning_period_s": baseline.period_s},
        )
