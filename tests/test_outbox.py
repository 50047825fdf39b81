from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from netwatch.outbox import Outbox, OutboxLimits


def test_put_due_delivered() -> None:
    box = Outbox(":memory:")
    a = box.put("am", "k1", {"n": 1})
    b = box.put("slack", "k1", {"n": 2})
    assert [i.id for i in box.due(0.0)] == [a, b]
    assert [i.payload for i in box.due(0.0, sink="slack")] == [{"n": 2}]
    assert len(box.due(0.0, limit=1)) == 1
    assert box.depth() == {"am": 1, "slack": 1}
    box.delivered(a)
    assert box.depth() == {"slack": 1}


def test_backoff_grows_with_full_jitter() -> None:
    draws = iter([1.0, 1.0, 1.0, 0.5, 0.0])
    box = Outbox(":memory:", rng=lambda: next(draws), base_backoff_s=2.0, max_backoff_s=10.0)
    item = box.put("am", "k", {})
    delays = [box.failed(item, 100.0) for _ in range(5)]
    assert delays == [2.0, 4.0, 8.0, 5.0, 0.0]  # ceiling 2, 4, 8, 10 (capped), 10; times draw
    (due,) = box.due(100.0)
    assert due.attempts == 5 and due.next_attempt == 100.0


def test_retry_after_honoured_when_larger() -> None:
    box = Outbox(":memory:", rng=lambda: 1.0, base_backoff_s=1.0)
    item = box.put("am", "k", {})
    assert box.failed(item, 10.0, retry_after=30.0) == 30.0
    assert box.due(39.9) == [] and len(box.due(40.0)) == 1
    assert box.failed(item, 40.0, retry_after=0.5) == 2.0  # the backoff is longer


def test_failed_on_unknown_item_is_harmless() -> None:
    assert Outbox(":memory:").failed(42, 0.0) == 0.0


def test_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "state" / "outbox.sqlite"
    box = Outbox(path, rng=lambda: 1.0)
    kept = box.put("am", "k", {"rule": "rogue_dns"})
    gone = box.put("am", "k2", {})
    box.delivered(gone)
    box.failed(kept, 5.0)
    box.close()
    again = Outbox(path)
    (item,) = again.due(0.0)  # a new process tries at once; the attempts are kept
    assert (item.id, item.payload, item.attempts, item.next_attempt) == (
        kept,
        {"rule": "rogue_dns"},
        1,
        0.0,
    )
    assert again.put("am", "k3", {}) > gone  # ids are never reused
    again.close()


def test_rejects_non_json_payload() -> None:
    with pytest.raises(ValueError):
        Outbox(":memory:").put("am", "k", {"x": float("nan")})


def test_a_waiting_identity_absorbs_repeats_and_keeps_its_first_record(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    first = box.put("am", "k1", {"rule": "r", "ts": "t0", "count": 1}, now=100.0)
    assert box.put("am", "k1", {"rule": "r", "ts": "t1", "count": 3}, now=200.0) == first
    box.put("am", "k2", {"rule": "r", "ts": "t2"}, now=150.0)
    box.put("log", "k1", {"rule": "r", "ts": "t0"}, now=300.0)  # another sink: its own item
    assert box.depth() == {"am": 2, "log": 1}
    assert box.oldest() == {"am": 100.0, "log": 300.0}
    items = box.due(1000.0, sink="am")
    assert items[0].payload == {"rule": "r", "ts": "t0", "count": 4}
    box.delivered(first)
    box.put("am", "k1", {"rule": "r", "ts": "t3", "count": 1}, now=400.0)  # after delivery
    assert [i.payload["ts"] for i in box.due(1000.0, sink="am")] == ["t2", "t3"]
    box.close()


# ---------------------------------------------------------------------- issue 9 regressions

OLD_SCHEMA = """
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, sink TEXT NOT NULL, key TEXT NOT NULL,
    payload TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL DEFAULT 0, created REAL NOT NULL DEFAULT 0
);
CREATE INDEX outbox_due ON outbox (sink, next_attempt);
CREATE INDEX outbox_key ON outbox (sink, key);
"""


def _old_file(path: Path, rows: list[tuple[str, str, str, float]]) -> None:
    """An outbox file as the previous release wrote it."""
    db = sqlite3.connect(path)
    db.executescript(OLD_SCHEMA)
    db.executemany(
        "INSERT INTO outbox (sink, key, payload, next_attempt) VALUES (?, ?, ?, ?)", rows
    )
    db.commit()
    db.close()


def test_an_outbox_file_of_the_previous_release_opens_and_keeps_its_items(
    tmp_path: Path,
) -> None:
    path = tmp_path / "outbox.sqlite"
    crit = json.dumps({"severity": "critical", "rule": "r"})
    info = json.dumps({"severity": "info", "rule": "r"})
    _old_file(path, [("am", "k1", crit, 0.0), ("am", "k2", info, 0.0)])
    evicted: list[tuple[str, int]] = []
    box = Outbox(path, limits=OutboxLimits(max_rows=2), on_drop=lambda r, n: evicted.append((r, n)))
    assert box.totals() == (2, len(crit) + len(info))
    box.put("am", "k3", {"severity": "high"})  # over the bound: the old info item goes
    assert [i.key for i in box.due(0.0)] == ["k1", "k3"]
    assert evicted == [("max_rows", 1)]
    box.close()


def test_rows_bound_drops_lowest_severity_then_oldest() -> None:
    drops: list[tuple[str, int]] = []
    box = Outbox(
        ":memory:", limits=OutboxLimits(max_rows=3), on_drop=lambda r, n: drops.append((r, n))
    )
    for key, sev in [("a", "info"), ("b", "critical"), ("c", "info"), ("d", "low")]:
        box.put("am", key, {"severity": sev})
    assert [i.key for i in box.due(0.0)] == ["b", "c", "d"]  # the oldest info went
    box.put("am", "e", {"severity": "critical"})
    assert [i.key for i in box.due(0.0)] == ["b", "d", "e"]  # then the other info
    box.put("am", "f", {"severity": "critical"})
    assert [i.key for i in box.due(0.0)] == ["b", "e", "f"]  # then low
    assert sum(n for _, n in drops) == 3 and {r for r, _ in drops} == {"max_rows"}
    assert box.totals()[0] == 3


def test_bytes_bound_and_in_flight_items_are_never_evicted() -> None:
    drops: list[tuple[str, int]] = []
    big = "x" * 1000
    box = Outbox(
        ":memory:", limits=OutboxLimits(max_bytes=3500), on_drop=lambda r, n: drops.append((r, n))
    )
    box.put("am", "k0", {"severity": "info", "pad": big})
    assert len(box.claim("am", 0.0)) == 1
    for i in range(1, 6):
        box.put("am", f"k{i}", {"severity": "critical", "pad": big})
    rows, size = box.totals()
    assert size <= 3500 and rows == 3
    assert box.in_flight() == 1  # the info item in flight was kept
    assert drops and {r for r, _ in drops} == {"max_bytes"} and sum(n for _, n in drops) == 3


@pytest.mark.parametrize("retry_after", [99999999999.0, float("9" * 400), float("nan")])
def test_retry_after_is_capped_at_the_max_backoff(retry_after: float) -> None:
    box = Outbox(":memory:", rng=lambda: 0.0, max_backoff_s=300.0)
    item = box.put("am", "k", {})
    assert box.failed(item, 1000.0, retry_after=retry_after) == 300.0
    assert box.due(1299.0) == [] and len(box.due(1300.0)) == 1


def test_a_far_retry_stored_by_an_older_version_is_due_at_start(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    _old_file(path, [("am", "k", "{}", float("inf")), ("am", "k2", "{}", 1e11)])
    box = Outbox(path, max_backoff_s=300.0)
    assert len(box.claim("am", 1000.0)) == 2  # a new process tries them at once
    box.close()


def test_a_re_report_during_a_send_is_a_new_item_not_merged_into_the_one_in_flight() -> None:
    box = Outbox(":memory:")
    first = box.put("am", "k", {"count": 1})
    (sending,) = box.claim("am", 0.0)
    again = box.put("am", "k", {"count": 1})  # arrives while ``first`` is being sent
    assert again != first
    box.delivered(sending.id)
    assert [(i.id, i.payload) for i in box.due(0.0)] == [(again, {"count": 1})]


def test_claims_of_a_previous_process_are_void(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    box = Outbox(path)
    box.put("am", "k", {})
    assert len(box.claim("am", 0.0)) == 1 and box.claim("am", 0.0) == []
    box.close()  # a crash mid-send
    again = Outbox(path)
    assert len(again.claim("am", 0.0)) == 1
    again.close()


def test_sink_state_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    box = Outbox(path)
    box.save_state("am", {"a": {"x": 1}, "b": {"x": 2}})
    box.save_state("am", {"c": {"x": 3}}, ["a"])
    box.close()
    again = Outbox(path)
    assert again.load_state("am") == {"b": {"x": 2}, "c": {"x": 3}}
    again.save_state("am", {"d": {}}, replace=True)
    assert again.load_state("am") == {"d": {}}
    again.close()
