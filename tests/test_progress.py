"""The progress line: drawn after a delay, redrawn, wiped before log records and at the end."""

from __future__ import annotations

import io
import logging
import threading

from netwatch.progress import ClearLine, Progress, _clock


class Terminal(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return len(text)


def test_draws_wipes_and_stops() -> None:
    term = Terminal()
    drawn = threading.Event()
    calls = 0

    def text() -> str:
        nonlocal calls
        calls += 1
        if calls >= 3:
            drawn.set()
        return f"step {calls}"

    with Progress(term, text, interval_s=0.001, after_s=0.0) as shown:
        assert drawn.wait(5)
        handler = logging.StreamHandler(term)
        handler.addFilter(ClearLine(shown))
        record = logging.LogRecord("netwatch.alert", logging.WARNING, "", 0, "alert!", (), None)
        handler.handle(record)
    assert term.writes[0] == "\r\x1b[K[00:00] step 1"
    assert "\r\x1b[K[00:00] step 2" in term.writes
    # the log line never lands after the status text: the wipe comes first
    at = term.writes.index("alert!\n")
    assert term.writes[at - 1] == "\r\x1b[K"
    assert term.writes[-1] == "\r\x1b[K" or term.writes[-1] == "alert!\n"
    drawn_after = shown.draws
    assert drawn_after >= 3


def test_a_short_run_draws_nothing() -> None:
    term = Terminal()
    with Progress(term, lambda: "never", after_s=5.0) as shown:
        pass
    assert shown.draws == 0 and term.writes == []


def test_a_failing_text_skips_the_redraw() -> None:
    term = Terminal()
    done = threading.Event()

    def text() -> str:
        done.set()
        raise KeyError("counters mid-update")

    with Progress(term, text, interval_s=0.001, after_s=0.0):
        assert done.wait(5)
    assert term.writes == []


def test_clock() -> None:
    assert _clock(5) == "00:05"
    assert _clock(3 * 3600 + 61) == "3:01:01"
