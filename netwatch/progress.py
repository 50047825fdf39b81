"""A one-line progress display for long offline runs (``netwatch replay``), on a terminal only.

:class:`Progress` redraws one status line on a terminal stream (``\\r`` then the text, the
rest of the line cleared) every ``interval_s`` from a daemon thread, once the run has lasted
``after_s`` (short runs print nothing). The text comes from a callable the caller gives; it
reads counters another thread updates, so it is a glance, not a consistent snapshot.
:class:`ClearLine` is a logging filter that wipes the status line before a log record is
written to the same terminal, so alert lines never land in the middle of it.

Reads no config. Callers decide whether to show it (``stream.isatty()``, not ``-q``).
Known limits: the fused packet loops publish no per-packet position, so the line shows
packet time (as of the last one-second flow-table sweep), flows and alerts, not a percentage.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

#: Seconds between redraws, and before the first one.
INTERVAL_S = 0.5
AFTER_S = 2.0
_CLEAR = "\r\x1b[K"


class Progress:
    """The status line: a context manager that starts the redraw thread and clears the line
    when it exits."""

    def __init__(
        self,
        stream: TextIO,
        text: Callable[[], str],
        *,
        interval_s: float | None = None,
        after_s: float | None = None,
    ) -> None:
        self._stream = stream
        self._text = text
        self._interval_s = INTERVAL_S if interval_s is None else interval_s
        self._after_s = AFTER_S if after_s is None else after_s
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._shown = False
        self.draws = 0

    def __enter__(self) -> Progress:
        self._thread = threading.Thread(target=self._run, name="progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.clear()

    def clear(self) -> None:
        """Wipe the status line (when one is shown)."""
        with self._lock:
            if self._shown:
                self._write(_CLEAR)
                self._shown = False

    def _run(self) -> None:
        started = time.monotonic()
        if self._stop.wait(self._after_s):
            return
        while not self._stop.is_set():
            try:
                line = self._text()
            except Exception:  # counters read mid-update: skip this redraw
                line = ""
            if line:
                elapsed = time.monotonic() - started
                with self._lock:
                    self._write(f"{_CLEAR}[{_clock(elapsed)}] {line}")
                    self._shown = True
                    self.draws += 1
            self._stop.wait(self._interval_s)

    def _write(self, text: str) -> None:
        try:
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError):  # the terminal went away: stop drawing
            self._stop.set()


class ClearLine(logging.Filter):
    """Wipes the progress line before each record a handler on the same terminal writes."""

    def __init__(self, progress: Progress) -> None:
        super().__init__()
        self._progress = progress

    def filter(self, record: logging.LogRecord) -> bool:
        self._progress.clear()
        return True


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"
