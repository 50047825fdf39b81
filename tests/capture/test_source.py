"""The daemon's file source: batches, passes, looping, real-time pacing and stopping."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from netwatch.capture.files import CaptureError, open_capture
from netwatch.capture.source import END_OF_PASS, Batch, FileSource

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "pcaps" / "demo" / "camera-site-demo.pcap"
UPLOAD = REPO / "pcaps" / "scenarios" / "camera-upload.pcap"


def _packets(path: Path) -> list[object]:
    with open_capture(path) as cap:
        return list(cap.packets())


def collect(source: FileSource, stop: threading.Event, passes: int = 1) -> list[Batch | None]:
    out: list[Batch | None] = []
    for batch in source.batches(stop):
        out.append(batch)
        if batch is END_OF_PASS and sum(b is END_OF_PASS for b in out) >= passes:
            stop.set()
    return out


def test_files_in_order_in_bounded_batches() -> None:
    source = FileSource([DEMO, UPLOAD], max_batch=1000)
    out = collect(source, threading.Event())
    assert out[-1] is END_OF_PASS and out.count(END_OF_PASS) == 1
    batches = [b for b in out if b]
    assert all(len(b) <= 1000 for b in batches)
    times = [p[0] for b in batches for p in b]
    assert len(times) == source.packets == 5221 + sum(1 for _ in _packets(UPLOAD))
    assert times[0] == 1768467600.05  # recorded times are kept without pacing


def test_loop_starts_over_until_stopped() -> None:
    source = FileSource([UPLOAD], loop=True)
    out = collect(source, threading.Event(), passes=3)
    assert out.count(END_OF_PASS) == 3 and source.passes == 3
    assert source.packets == 3 * len(_packets(UPLOAD))


def test_realtime_paces_and_shifts_packet_times_to_now() -> None:
    source = FileSource([DEMO], realtime=True, speed=200.0, max_wait_s=0.05)
    start = time.time()
    out = collect(source, threading.Event())
    elapsed = time.time() - start
    times = [p[0] for b in out if b for p in b]
    assert 59.92 / 200 * 0.8 <= elapsed < 5.0  # the capture spans 59.92 s
    assert abs(times[0] - start) < 0.5
    assert times[-1] - times[0] == pytest.approx(59.92014 / 200, abs=1e-6)
    assert [] in out  # empty batches hand control back while waiting


def test_stop_ends_a_paced_pass_promptly() -> None:
    stop = threading.Event()
    source = FileSource([DEMO], realtime=True, speed=1.0, max_wait_s=0.05)
    threading.Timer(0.3, stop.set).start()
    start = time.monotonic()
    out = list(source.batches(stop))
    assert time.monotonic() - start < 1.5
    assert END_OF_PASS not in out[:-1]


def test_a_missing_file_at_the_first_pass_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CaptureError):
        collect(FileSource([tmp_path / "gone.pcap"]), threading.Event())


def test_speed_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        FileSource([DEMO], speed=0)
