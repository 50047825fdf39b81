from __future__ import annotations

import json
from pathlib import Path

from netwatch.config.schema import SinkConfig
from netwatch.sinks.jsonl import JsonlSink
from tests.sinks.conftest import make_alert


def test_appends_one_line_per_alert_and_reopens(tmp_path: Path) -> None:
    path = tmp_path / "log" / "alerts.jsonl"
    sink = JsonlSink(SinkConfig(name="log", type="jsonl", path=path))
    records = [make_alert().record(), make_alert(rule="rogue_dns").record(3)]
    assert sink.send(records).ok
    rotated = path.with_suffix(".1")
    path.rename(rotated)
    sink.reopen()
    assert sink.send([records[0]]).ok
    sink.close()
    old = [json.loads(line) for line in rotated.read_text().splitlines()]
    assert old == records
    assert [json.loads(line) for line in path.read_text().splitlines()] == [records[0]]


def test_write_error_is_a_failure(tmp_path: Path) -> None:
    sink = JsonlSink(SinkConfig(name="log", type="jsonl", path=tmp_path))  # a directory
    result = sink.send([make_alert().record()])
    assert not result.ok and "cannot write" in result.error and not result.permanent
