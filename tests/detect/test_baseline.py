"""Tests for the per-camera destination baselines: the decision, its bounds, its SQLite file."""

from __future__ import annotations

import ipaddress
import random
import socket
import sqlite3
import time
from pathlib import Path

from netwatch.alerts.model import Alert, Severity
from netwatch.config import Config
from netwatch.detect.baseline import Baseline, DestinationKey, Verdict, destination_of
from netwatch.detect.baseline_store import SqliteBaselineStore


def key(dest: str, device: str = "cam", port: int = 443) -> DestinationKey:
    return DestinationKey(device, dest, port, "tcp")


def test_destination_is_the_name_else_the_network() -> None:
    assert destination_of(socket.inet_aton("175.16.199.1"), None) == "175.16.199.0/24"
    assert destination_of(socket.inet_pton(socket.AF_INET6, "2001:218::1"), None) == (
        "2001:218::/48"
    )
    assert destination_of(socket.inet_aton("175.16.199.1"), "dev.ys7.com") == "dev.ys7.com"


def test_learning_then_new_once() -> None:
    b = Baseline(None, period_s=100)
    assert b.decide(key("a.example"), 0.0) is Verdict.LEARNED
    assert b.decide(key("b.example"), 150.0) is Verdict.NEW
    assert b.decide(key("b.example"), 160.0) is Verdict.KNOWN
    assert b.decide(key("a.example"), 170.0) is Verdict.KNOWN
    assert b.decide(key("b.example", "other"), 170.0) is Verdict.LEARNED  # its own learning
    assert (b.counters.learned, b.counters.new) == (2, 1)


def test_observe_builds_the_candidate_only_for_a_new_key() -> None:
    b = Baseline(None, period_s=10)
    built: list[str] = []

    def candidate() -> Alert:
        built.append("x")
        return Alert(ts=0, rule="new_destination", severity=Severity.MEDIUM, device="cam",
                     device_ip="10.0.0.5", summary="s")  # fmt: skip

    assert b.observe(key("a.example"), 0.0, candidate) is None
    assert b.observe(key("b.example"), 50.0, candidate) is not None
    assert b.observe(key("b.example"), 60.0, candidate) is None
    assert built == ["x"]


def test_survives_a_restart_on_a_real_file(tmp_path: Path) -> None:
    path = tmp_path / "state" / "baseline.sqlite"
    b = Baseline(path, period_s=100)
    b.decide(key("a.example"), 0.0)
    b.decide(key("n.example"), 200.0)  # new, and then known
    b.close()
    again = Baseline(path, period_s=100)
    assert len(again) == 2
    assert again.decide(key("a.example"), 500.0) is Verdict.KNOWN
    assert again.decide(key("n.example"), 500.0) is Verdict.KNOWN
    assert again.decide(key("c.example"), 500.0) is Verdict.NEW  # learning ended (file time)
    again.close()
    rows = sqlite3.connect(path).execute("SELECT dest, learned FROM destinations").fetchall()
    assert sorted(rows) == [("a.example", 1), ("c.example", 0), ("n.example", 0)]


def test_bounded_per_device() -> None:
    b = Baseline(None, period_s=0, max_per_device=10)
    new = [b.decide(key(f"{i}.example"), 1.0) is Verdict.NEW for i in range(50)]
    assert sum(new) == 10 and b.counters.capped_device == 40 and len(b) == 10


def test_bounded_globally_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "baseline.sqlite"
    b = Baseline(path, period_s=0, max_per_device=20, max_destinations=100)
    verdicts = [b.decide(key(f"{i}.example", f"cam{i % 30}"), 1.0) for i in range(300)]
    assert len(b) == 100 and verdicts.count(Verdict.NEW) == 100
    assert b.counters.capped_global == 200 and b.counters.capped_device == 0
    b.close()
    assert Baseline(path, period_s=0, max_destinations=100).__len__() == 100
    store = SqliteBaselineStore(path)
    smaller = Baseline(period_s=0, max_destinations=40, store=store)
    assert len(smaller) == 40 and store.counters.load_skipped == 60


def test_loading_200k_destinations_is_fast(tmp_path: Path) -> None:
    """300 cameras x 10k destinations took 21 s and 740 MB: the global bound caps the load
    (200,000 by default), and loading that many stays well under a few seconds."""
    path = tmp_path / "baseline.sqlite"
    Baseline(path, period_s=0).close()  # creates the schema
    with sqlite3.connect(path) as db:
        rows = ((f"cam{i % 300}", f"{i}.cdn.example", 443, "tcp", 1.0, 1) for i in range(250_000))
        db.executemany("INSERT INTO destinations VALUES (?, ?, ?, ?, ?, ?)", rows)
    started = time.perf_counter()
    store = SqliteBaselineStore(path)
    b = Baseline(period_s=0, store=store)
    elapsed = time.perf_counter() - started
    assert len(b) == 200_000 and store.counters.load_skipped == 50_000
    assert elapsed < 5.0, f"loading took {elapsed:.1f} s"


def test_writes_are_off_the_caller_and_a_locked_file_is_survived(tmp_path: Path) -> None:
    """Another connection holds the file locked: deciding stays instant, the writer counts
    the failure and writes once the lock is gone."""
    path = tmp_path / "baseline.sqlite"
    store = SqliteBaselineStore(path, interval_s=0.05, busy_timeout_s=0.1)
    b = Baseline(period_s=0, store=store)
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    started = time.perf_counter()
    for i in range(2_000):
        b.decide(key(f"{i}.example"), 1.0)
    assert time.perf_counter() - started < 0.5
    deadline = time.monotonic() + 10
    while store.counters.write_errors == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store.counters.write_errors >= 1
    locker.execute("ROLLBACK")
    locker.close()
    assert b.flush(10.0)
    b.close()
    assert len(Baseline(path, period_s=0)) == 2_000


def test_a_corrupt_file_is_set_aside_not_raised(tmp_path: Path) -> None:
    path = tmp_path / "baseline.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    store = SqliteBaselineStore(path)
    b = Baseline(period_s=0, store=store)
    assert len(b) == 0 and store.counters.load_errors == 1
    assert (tmp_path / "baseline.sqlite.corrupt").is_file()
    b.decide(key("a.example"), 1.0)
    b.close()
    assert len(Baseline(path, period_s=0)) == 1


def test_an_unwritable_directory_is_counted_not_raised(tmp_path: Path) -> None:
    path = tmp_path / "gone" / "baseline.sqlite"
    store = SqliteBaselineStore(path, interval_s=0.05)
    b = Baseline(period_s=0, store=store)
    path.unlink()
    path.parent.rmdir()
    b.decide(key("a.example"), 1.0)  # the writer cannot open the file
    assert not b.flush(0.5)
    assert store.counters.write_errors >= 1
    b.close()
    assert store.counters.dropped == 2  # the camera's first sighting and its destination


def test_network_destinations_match_ipaddress() -> None:
    """The formatted-by-hand networks equal what ``ipaddress`` computes."""
    rng = random.Random(9)
    for _ in range(2_000):
        for size, prefix in ((4, 24), (16, 48)):
            ip = rng.randbytes(size)
            want = ipaddress.ip_network((ipaddress.ip_address(ip), prefix), strict=False)
            assert destination_of(ip, None) == str(want)


def test_bounds_come_from_the_learning_section() -> None:
    cfg = Config.from_yaml("learning: {period_s: 5, max_per_device: 3, max_destinations: 4}")
    b = Baseline.of(cfg.learning, None)
    for i in range(10):
        b.decide(key(f"{i}.example", f"cam{i % 2}"), 1.0)
    assert (b.period_s, len(b), b.counters.capped_device, b.counters.capped_global) == (5, 4, 0, 6)
    assert (
        Config.default().learning.max_per_device,
        Config.default().learning.max_destinations,
    ) == (
        10_000,
        200_000,
    )
