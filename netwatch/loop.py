"""The one capture loop: batches from a source through the pipeline, periodic work between.

The single-process daemon and every capture worker run this same loop (uvicorn's
``Server.main_loop`` is the model): take one batch (a list of packets, a live ring block
already laid out as pcap records, or ``None`` when a live source had nothing), run it
through the fused or general path, let timers run at wall time on a quiet live link, check
flows still active every ``alerts.evaluate_active_s`` of packet time, then hand control
to the owner's ``tick`` for its own periodic work (watchdog, reload, reports). Nothing here
is done per packet.

The loop ends when the source is exhausted (capture files without ``capture.loop``) or
``stop`` is set; a stop is seen at the next batch boundary (at most one batch of 4,096
packets, or one ring poll, later). Ending flows and writing what is left is the owner's
shutdown, not the loop's.

Config read: none directly (the pipeline reads ``alerts.evaluate_active_s``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from netwatch.capture.source import END_OF_PASS, Block, Source
from netwatch.pipeline import Pipeline, RecordSink

Tick = Callable[[float | None], None]
"""Called after every batch with the packet time of the newest packet seen so far."""


@dataclass(slots=True)
class LoopStats:
    """What the loop has done (read by the owner's status and summary lines)."""

    batches: int = 0
    passes: int = 0
    last_ts: float | None = None


class CaptureLoop:
    """Runs ``source`` through ``pipeline`` until the source ends or ``stop`` is set."""

    def __init__(
        self,
        pipeline: Pipeline,
        source: Source,
        stop: threading.Event,
        *,
        tick: Tick,
        live: bool,
        loop_files: bool = False,
        clock: Callable[[], float],
        on_progress: RecordSink | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.source = source
        self.stop = stop
        self.tick = tick
        self.live = live
        self.loop_files = loop_files
        self.clock = clock
        self.on_progress = on_progress
        self.stats = LoopStats()

    def run(self) -> None:
        """The loop itself (see the module docstring)."""
        pipeline, stats = self.pipeline, self.stats
        for batch in self.source.batches(self.stop):
            stats.batches += 1
            if batch is END_OF_PASS:
                stats.passes += 1
                if self.loop_files:
                    # a looped pass replays the same 5-tuples: end its flows first
                    pipeline.end_pass()
                continue
            if isinstance(batch, Block):
                pipeline.run_block(batch)
                stats.last_ts = batch.last_ts
            elif batch:
                pipeline.run(batch)
                stats.last_ts = batch[-1][0]
            elif self.live:
                pipeline.advance(self.clock())
            if batch and stats.last_ts is not None:
                pipeline.check_active(stats.last_ts, self.on_progress)
            self.tick(stats.last_ts)
