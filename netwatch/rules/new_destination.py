"""``new_destination``: after its learning period, a camera talks to a destination it never
used before.

Each camera's baseline of (destination, port, proto) is learned for ``learning.period_s``
from when the camera is first seen (default 7 days) and kept in the state directory (see
:mod:`netwatch.detect.baseline`). After that, a destination outside the baseline is reported
once and then becomes known. The destination is the name the camera asked for, or the
peer's /24 (/48) network. Evidence: the destination key and the learning period.

The rule asks its :class:`~netwatch.detect.baseline.DestinationBaseline` once per camera
flow end, handing it a builder of the candidate alert (built only when the key is not
known): the daemon's baseline answers at once; a capture worker's sends the candidate to
the process that owns the baseline, which emits it once across all workers
(:mod:`netwatch.detect.baseline_share`). The rule does no I/O.

Config read: ``learning.*`` (through the baseline). Known false positives: firmware updates
and changed cloud hosts; each alerts once. To relearn a camera, delete its rows (or the
database) while netwatch is stopped.

Options (``rules.new_destination``, ``groups.<name>.rules.new_destination``):
``enabled`` and ``severity`` only (``off`` switches the rule off; a severity replaces
the rule's own).
"""

from __future__ import annotations

from collections.abc import Iterator

from netwatch.alerts.model import Alert, Direction, Severity
from netwatch.detect.baseline import DestinationKey, destination_of
from netwatch.detect.facts import FlowFacts
from netwatch.rules.base import Rule

_new_tuple = tuple.__new__


class NewDestination(Rule):
    """A camera, past its learning period, reaches a destination outside its baseline."""

    #: Its first check: the camera opened the flow (never so for an inbound flow).
    directions = frozenset({Direction.OUTBOUND, Direction.LOCAL})

    def on_flow_end(self, facts: FlowFacts) -> Iterator[Alert]:
        baseline = self.context.baseline if self.context is not None else None
        if baseline is None or not facts.device_is_orig or facts.icmp_error:
            return  # an ICMP error the camera sends back reaches no destination of its own
        peer = facts.peer
        # DestinationKey(...) without its generated __new__'s Python frame (the same tuple)
        key = _new_tuple(
            DestinationKey,
            (facts.device.name, destination_of(peer.ip, peer.name), peer.port, peer.proto),
        )
        period_s = baseline.period_s

        def candidate() -> Alert:
            return facts.alert(
                self.id,
                Severity.MEDIUM,
                f"{key.device} reached a new destination {key.dest} on "
                f"{key.proto}/{key.port} after its learning period",
                {"destination": key.dest, "learning_period_s": period_s},
            )

        found = baseline.observe(key, float(facts.record["ts"]), candidate)
        if found is not None:
            yield found
