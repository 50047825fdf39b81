from __future__ import annotations

from pathlib import Path

import pytest

from netwatch.outbox import Outbox


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
    (item,) = again.due(6.0)
    assert (item.id, item.payload, item.attempts, item.next_attempt) == (
        kept,
        {"rule": "rogue_dns"},
        1,
        6.0,
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
