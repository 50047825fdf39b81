"""``outbound_stream``: a camera sends video or clips upstream to a non-allowed destination.

Fires on a flow from a camera to a destination outside the site that its group does not
allow, when either holds:

- **stream**: at least ``stream_bytes`` of payload per ``stream_window_s`` on average over
  the flow, and at least ``stream_bytes`` in total (defaults: 500 kB per 60 s, about
  67 kbit/s: far below any video stream, far above registration keep-alives). That is a
  feed leaving the building. Severity critical.
- **clip**: a short, lopsided upload, as cloud cameras send a motion clip or snapshot
  burst: at least ``clip_bytes`` up (default 250 kB) averaged per ``clip_window_s``
  (default 300 s) and at least ``clip_ratio`` times what came back (default 10: an HTTPS
  upload gets a few kB of handshake and response). Severity high.

Options (:class:`Options`; ``rules.outbound_stream`` for the site,
``groups.<name>.rules.outbound_stream`` for a group): ``stream_bytes``, ``stream_window_s``,
``clip_bytes``, ``clip_window_s``, ``clip_ratio`` (defaults above, from ``STREAM``/``CLIP``),
besides ``enabled`` and ``severity`` (which replaces both kinds' severity). The old
``groups.<name>.stream_bytes`` ... keys still work, with a deprecation warning. Evidence:
bytes up and down, duration, the kind (``stream``/``clip``), the rate per window, the
up/down ratio and the thresholds applied.

Known limits: rates are averaged over the whole flow, so a short burst in a long idle flow
(a clip sent over a connection kept open for hours) is diluted. Known false positives:
cloud recording or remote viewing the site uses on purpose (allow the destination in the
group's policy); a large one-way log or crash-dump upload looks like a clip.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum

from netwatch.alerts.model import Direction, RuleAlert, Severity
from netwatch.config import values as v
from netwatch.config.schema import key
from netwatch.detect.facts import FlowFacts
from netwatch.rules.base import Rule, RuleOptions


class Kind(Enum):
    """What the upload looks like."""

    STREAM = "stream"
    CLIP = "clip"


@dataclass(frozen=True, slots=True)
class Thresholds:
    """One kind's thresholds: bytes per window, and (clips) the up/down ratio."""

    min_bytes: int
    window_s: float
    min_ratio: float = 0.0


STREAM = Thresholds(min_bytes=500_000, window_s=60.0)
CLIP = Thresholds(min_bytes=250_000, window_s=300.0, min_ratio=10.0)
SEVERITY = {Kind.STREAM: Severity.CRITICAL, Kind.CLIP: Severity.HIGH}


@dataclass(frozen=True, slots=True, kw_only=True)
class Options(RuleOptions):
    """``rules.outbound_stream``: the stream and clip thresholds (module docstring)."""

    LEGACY_GROUP_KEYS = (
        "stream_bytes",
        "stream_window_s",
        "clip_bytes",
        "clip_ratio",
        "clip_window_s",
    )

    stream_bytes: int = key(v.integer(1), STREAM.min_bytes)
    stream_window_s: float = key(v.seconds, STREAM.window_s)
    clip_bytes: int = key(v.integer(1), CLIP.min_bytes)
    clip_window_s: float = key(v.seconds, CLIP.window_s)
    clip_ratio: float = key(v.factor, CLIP.min_ratio)


def thresholds(options: Options) -> dict[Kind, Thresholds]:
    """The group's thresholds, from its options."""
    return {
        Kind.STREAM: Thresholds(options.stream_bytes, options.stream_window_s),
        Kind.CLIP: Thresholds(options.clip_bytes, options.clip_window_s, options.clip_ratio),
    }


def per_window(bytes_up: int, duration: float, window: float) -> float:
    """Bytes per ``window`` seconds, averaged over the flow (a shorter flow counts whole)."""
    return bytes_up * window / max(duration, window)


def up_down_ratio(bytes_up: int, bytes_down: int) -> float:
    """How lopsided the flow is (bytes down of 0 count as 1)."""
    return bytes_up / max(bytes_down, 1)


def matches(t: Thresholds, bytes_up: int, bytes_down: int, duration: float) -> bool:
    """True when the flow reaches ``t`` in total, per window and in up/down ratio."""
    return (
        bytes_up >= t.min_bytes
        and per_window(bytes_up, duration, t.window_s) >= t.min_bytes
        and up_down_ratio(bytes_up, bytes_down) >= t.min_ratio
    )


class OutboundStream(Rule):
    """A camera streams or uploads clips to a destination its group does not allow."""

    directions = frozenset({Direction.OUTBOUND})  # its first check

    options_type = Options

    def on_flow_end(self, facts: FlowFacts) -> Iterator[RuleAlert]:
        if facts.direction is not Direction.OUTBOUND:
            return
        up, down = facts.bytes_up, facts.bytes_down
        options = facts.options(self.id, Options)
        if up < min(options.stream_bytes, options.clip_bytes):
            return  # the common case, decided without building anything
        duration = float(facts.record["duration"])
        found = [
            (kind, t) for kind, t in thresholds(options).items() if matches(t, up, down, duration)
        ]
        if not found or facts.policy.allows(facts.peer):
            return
        kind, t = found[0]
        rate_kbit = up * 8 / max(duration, 1e-3) / 1000
        what = "streamed" if kind is Kind.STREAM else "uploaded a clip of"
        yield facts.finding(
            self.id,
            SEVERITY[kind],
            f"{facts.device.name} {what} {up:,} bytes upstream to "
            f"{facts.peer.name or facts.record['id.resp_h']} in {duration:.0f} s "
            f"({rate_kbit:,.0f} kbit/s)",
            {
                "kind": kind.value,
                "bytes_up": up,
                "bytes_down": down,
                "duration_s": duration,
                "bytes_per_window": round(per_window(up, duration, t.window_s)),
                "up_down_ratio": round(up_down_ratio(up, down), 1),
                "threshold_bytes": t.min_bytes,
                "window_s": t.window_s,
                "min_ratio": t.min_ratio,
            },
        )
