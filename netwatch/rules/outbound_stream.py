"""``outbound_stream``: sustained upstream volume from a camera to a non-allowed destination.

Fires when a camera sends, to a destination outside the site that its group does not
allow, at least ``stream_bytes`` of payload per ``stream_window_s`` on average over the
flow (defaults: 500 kB per 60 s, about 67 kbit/s: far below any video stream, far above
registration keep-alives), and at least ``stream_bytes`` in total. That is what a feed
leaving the building looks like. Evidence: bytes up and down, duration, the rate, the
threshold. Known limits: the rate is averaged over the whole flow, so a short burst in a
long idle flow is diluted. Known false positives: cloud recording or remote viewing the
site uses on purpose: allow the destination in the group's policy.
"""

from __future__ import annotations

from collections.abc import Iterator

from netwatch.alerts.model import Alert, Direction, Severity
from netwatch.detect.facts import FlowFacts
from netwatch.rules.base import Rule


class OutboundStream(Rule):
    """A camera streams upstream to a destination its group does not allow."""

    def on_flow_end(self, facts: FlowFacts) -> Iterator[Alert]:
        threshold, window = facts.policy.stream_bytes, facts.policy.stream_window_s
        if facts.direction is not Direction.OUTBOUND or facts.bytes_up < threshold:
            return
        duration = float(facts.record["duration"])
        per_window = facts.bytes_up * window / max(duration, window)
        if per_window < threshold or facts.policy.allows(facts.peer):
            return
        rate_kbit = facts.bytes_up * 8 / max(duration, 1e-3) / 1000
        yield facts.alert(
            self.id,
            Severity.CRITICAL,
            f"{facts.device.name} streamed {facts.bytes_up:,} bytes upstream to "
            f"{facts.peer.name or facts.record['id.resp_h']} in {duration:.0f} s "
            f"({rate_kbit:,.0f} kbit/s)",
            {
                "bytes_up": facts.bytes_up,
                "bytes_down": facts.bytes_down,
                "duration_s": duration,
                "bytes_per_window": round(per_window),
                "threshold_bytes": threshold,
                "window_s": window,
            },
        )
