"""The JSON-lines sink: one alert record per line, appended to ``path``.

Config read: ``sinks[].path`` (plus the common filters), ``ended`` (default false: the file
keeps one line per notification; true adds one ``status: ended`` line per incident end).
The file is opened on first write and flushed after every batch; ``reopen()`` closes it so
the next batch opens the path again (logrotate ``postrotate``). Known limit: a crash between
write and the outbox commit can write a line twice (at-least-once).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from typing import IO

from netwatch.config.schema import SinkConfig
from netwatch.sinks.base import Delivery, Record, Sink, SinkError

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


class JsonlSink(Sink):
    """Appends alert records to a file."""

    max_batch = 1000

    def __init__(self, config: SinkConfig, *, environ: Mapping[str, str] | None = None) -> None:
        super().__init__(config, environ=environ)
        if config.path is None:
            raise SinkError(f"sink {config.name}: path is required")
        self.path = config.path
        self._stream: IO[str] | None = None

    def send(self, payloads: Sequence[Record]) -> Delivery:
        try:
            if self._stream is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._stream = self.path.open("a", encoding="utf-8")
            self._stream.write("".join(_dumps(r) + "\n" for r in payloads))
            self._stream.flush()
        except OSError as exc:
            self.reopen()
            return Delivery.failure(f"cannot write {self.path}: {exc.strerror or exc}")
        return Delivery.success()

    def reopen(self) -> None:
        """Close the file; the next write opens ``path`` afresh (after rotation)."""
        if self._stream is not None:
            stream, self._stream = self._stream, None
            with contextlib.suppress(OSError):
                stream.close()

    close = reopen
