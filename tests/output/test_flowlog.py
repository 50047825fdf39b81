"""The flow log writer, in particular whole-line writes from several processes."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime
import enum
import io
import itertools
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netwatch.output import flowlog
from netwatch.output.flowlog import JsonLinesWriter, encode_line
from tests.profile import examples

PAD = "é" * 40 + "x" * 160  # non-ASCII: line lengths in bytes differ from characters


def record(worker: int, seq: int) -> dict[str, Any]:
    return {"worker": worker, "seq": seq, "uid": f"C{worker}-{seq:08d}", "pad": PAD}


def read_lines(path: Path) -> list[dict[str, Any]]:
    data = path.read_bytes()
    assert not data or data.endswith(b"\n")
    out = []
    for n, line in enumerate(data.split(b"\n")[:-1]):
        try:
            out.append(json.loads(line))
        except ValueError:
            pytest.fail(f"torn line {n}: {line[:80]!r}...")
    return out


def check_complete(lines: list[dict[str, Any]], per_worker: dict[int, int]) -> None:
    for worker, n in per_worker.items():
        seqs = [r["seq"] for r in lines if r["worker"] == worker]
        assert seqs == list(range(n)), f"worker {worker}: lost, repeated or reordered lines"
    assert len(lines) == sum(per_worker.values())
    assert all(r["pad"] == PAD and r["uid"] == f"C{r['worker']}-{r['seq']:08d}" for r in lines)


def test_records_are_long_enough() -> None:
    assert len(json.dumps(record(0, 0), ensure_ascii=False).encode()) > 200


def test_two_writers_interleaved_in_one_process(tmp_path: Path) -> None:
    path = tmp_path / "flows" / "conn.log"
    a = JsonLinesWriter(path, atomic_lines=True)
    b = JsonLinesWriter(path, atomic_lines=True)
    for i in range(5_000):
        a.write(record(0, i))
        b.write(record(1, i))
        if i % 997 == 0:
            b.flush()
    a.close()
    b.close()
    assert (a.records, b.records) == (5_000, 5_000)
    lines = read_lines(path)
    check_complete(lines, {0: 5_000, 1: 5_000})
    # whole batches of lines interleave, so both writers' lines are mixed in the file
    workers = [r["worker"] for r in lines]
    assert sum(x != y for x, y in itertools.pairwise(workers)) > 2


def test_only_whole_lines_reach_the_file(tmp_path: Path) -> None:
    path = tmp_path / "conn.log"
    w = JsonLinesWriter(path, atomic_lines=True)
    sizes = []
    for i in range(1_000):
        w.write(record(0, i))
        size = path.stat().st_size
        sizes.append(size)
        data = path.read_bytes()
        assert not data or data.endswith(b"\n")
    # buffered up to ATOMIC_CHUNK bytes at a time, then written at once
    assert sizes[0] == 0
    assert 0 < max(b - a for a, b in itertools.pairwise(sizes)) <= JsonLinesWriter.ATOMIC_CHUNK
    w.close()
    check_complete(read_lines(path), {0: 1_000})


def test_a_line_longer_than_the_chunk_is_written_whole(tmp_path: Path) -> None:
    path = tmp_path / "conn.log"
    w = JsonLinesWriter(path, atomic_lines=True)
    w.write(record(0, 0))
    big = {"worker": 0, "seq": 1, "blob": "y" * (JsonLinesWriter.ATOMIC_CHUNK * 2)}
    w.write(big)
    w.write(record(0, 2))
    w.close()
    lines = read_lines(path)
    assert [r["seq"] for r in lines] == [0, 1, 2]
    assert lines[1] == big


def test_appends_to_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "conn.log"
    path.write_text('{"old":1}\n')
    w = JsonLinesWriter(path, atomic_lines=True)
    w.write(record(0, 0))
    w.close()
    assert read_lines(path)[0] == {"old": 1}
    assert len(read_lines(path)) == 2


def test_atomic_lines_needs_a_path() -> None:
    with pytest.raises(ValueError, match="atomic_lines needs a path"):
        JsonLinesWriter(stream=io.StringIO(), atomic_lines=True)


def _child(path: Path, worker: int, n: int, go: int) -> None:
    os.read(go, 1)  # start together with the other worker
    w = JsonLinesWriter(path, atomic_lines=True)
    for i in range(n):
        w.write(record(worker, i))
        if i % 50 == 49:
            w.flush()
    w.close()


def test_two_processes_never_tear_a_line(tmp_path: Path) -> None:
    path = tmp_path / "conn.log"
    n = 20_000
    go_r, go_w = os.pipe()
    pids = []
    for worker in range(2):
        pid = os.fork()
        if pid == 0:  # the child: never returns into pytest
            code = 1
            try:
                os.close(go_w)
                _child(path, worker, n, go_r)
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    os.close(go_r)
    os.write(go_w, b"gg")
    os.close(go_w)
    for pid in pids:
        _pid, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    lines = read_lines(path)
    check_complete(lines, {0: n, 1: n})


def test_reopen_after_rename_writes_to_the_new_file(tmp_path: Path) -> None:
    path = tmp_path / "conn.log"
    rotated = tmp_path / "conn.log.1"
    w = JsonLinesWriter(path, atomic_lines=True)
    for i in range(10):
        w.write(record(0, i))
    w.flush()
    for i in range(10, 15):
        w.write(record(0, i))  # buffered while logrotate moves the file
    path.rename(rotated)
    w.reopen()  # flushes to the old file first
    for i in range(15, 20):
        w.write(record(0, i))
    w.close()
    assert [r["seq"] for r in read_lines(rotated)] == list(range(15))
    assert [r["seq"] for r in read_lines(path)] == list(range(15, 20))
    assert w.records == 20


def test_reopen_of_the_plain_writer_after_rename(tmp_path: Path) -> None:
    path = tmp_path / "conn.log"
    w = JsonLinesWriter(path)
    w.write(record(0, 0))
    path.rename(tmp_path / "old.log")
    w.reopen()
    w.write(record(0, 1))
    w.close()
    assert [r["seq"] for r in read_lines(tmp_path / "old.log")] == [0]
    assert [r["seq"] for r in read_lines(path)] == [1]


# ---------------------------------------------------------------------- issue 9 regressions

WRITER_SCRIPT = """
import sys, time
from pathlib import Path
from netwatch.output.flowlog import JsonLinesWriter
mode = sys.argv[2]
writer = JsonLinesWriter(Path(sys.argv[1]), line_buffered=mode == "line")
for i in range(80):
    writer.write({"seq": i, "rule": "cloud_registration"})
if mode == "flush":
    writer.flush()  # what the daemon's once-a-second tick does for the flow log
print("written", flush=True)
time.sleep(60)
"""


def _killed_after_writing(path: Path, mode: str) -> list[dict[str, Any]]:
    """Run a writer in a real process, SIGKILL it once it has written, read the file."""
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER_SCRIPT, str(path), mode],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "written\n"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    return read_lines(path)


@pytest.mark.parametrize("mode", ["line", "flush"])
def test_lines_written_are_on_disk_after_kill_9(tmp_path: Path, mode: str) -> None:
    lines = _killed_after_writing(tmp_path / "alerts.jsonl", mode)
    assert [r["seq"] for r in lines] == list(range(80))


def test_block_buffered_without_flush_is_what_lost_the_alert_log(tmp_path: Path) -> None:
    assert _killed_after_writing(tmp_path / "flows.jsonl", "block") == []


def test_close_closes_the_file_even_when_the_flush_fails(tmp_path: Path) -> None:
    writer = JsonLinesWriter(Path("/dev/full"))
    writer.write({"x": 1})
    with pytest.raises(OSError):
        writer.close()
    assert writer._stream.closed


_REFERENCE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
_C_CHECK = flowlog._plain


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("c", marks=pytest.mark.skipif(_C_CHECK is None, reason="no compiled core")),
        "python",
    ],
)
def check(request: pytest.FixtureRequest) -> Iterator[str]:
    """encode_line's record check: the compiled one (``_core.json_plain``) or Python's."""
    flowlog._plain = _C_CHECK if request.param == "c" else None
    yield request.param
    flowlog._plain = _C_CHECK


@pytest.mark.parametrize(
    "record",
    [
        {"ts": 1767261600.000123, "duration": 1e-05, "small": 5.6e-05, "big": 1e16, "zero": 0.0},
        {"name": 'caméra \u2028 \x00\x1f "q" \\ 😀', "none": None, "yes": True, "n": -(2**70)},
        {"nested": {"list": [1, 2.5, "x", None], "tuple": (1, 2)}, "empty": {}},
    ],
)
def test_encoder_writes_the_standard_encoders_text(record: dict[str, Any], check: str) -> None:
    out = io.StringIO()
    writer = JsonLinesWriter(stream=out)
    writer.write(record)
    assert out.getvalue() == _REFERENCE(record) + "\n"


@pytest.mark.parametrize(
    ("record", "error"), [({"x": float("nan")}, ValueError), ({"x": object()}, TypeError)]
)
def test_encoder_refuses_what_the_standard_encoder_refuses(
    record: dict[str, Any], error: type[Exception], check: str
) -> None:
    with pytest.raises(error):
        JsonLinesWriter(stream=io.StringIO()).write(record)


# ------------------------------------------------- issue 13: orjson with the standard text

FLOW_KEYS = (
    "ts", "uid", "id.orig_h", "id.orig_p", "duration", "orig_bytes", "conn_state",
    "local_orig", "resp_cc", "resp_asn", "resp_name", "user_agent",
)  # fmt: skip
EDGE_FLOATS = (
    0.0, -0.0, 1e-05, 1e-06, 1e-07, 5e-324, 9.99e-05, 0.0001, 0.000123, 1e16, 1e16 - 2,
    9999999999999998.0, 1.5e300, 1767261600.000123, 0.180722, float("inf"), float("nan"),
)  # fmt: skip
EDGE_INTS = (0, -1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1)

plain_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from(EDGE_INTS),
    st.floats(),  # NaN, infinities, subnormals, -0.0
    st.sampled_from(EDGE_FLOATS).map(lambda x: -x),
    st.sampled_from(EDGE_FLOATS),
    st.text(st.characters(codec=None, categories=None)),  # control characters, surrogates
    st.sampled_from(("null", "1e-05", "0.0000", "e-", "caméra 😀", "\u2028", "\ud83d", "a\udc00")),
)
flow_shaped = st.dictionaries(
    st.one_of(st.sampled_from(FLOW_KEYS), st.text(st.characters(codec=None, categories=None))),
    plain_values,
    max_size=14,
)
any_records = st.dictionaries(
    st.text(max_size=6),
    st.recursive(
        plain_values,
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.tuples(inner, inner)
            | st.dictionaries(st.one_of(st.text(max_size=4), st.integers(), st.none()), inner)
        ),
        max_leaves=6,
    ),
    max_size=6,
)


def _reference_line(record: dict[str, Any]) -> str | type[Exception]:
    try:
        return _REFERENCE(record) + "\n"
    except (TypeError, ValueError) as exc:
        return type(exc)


def _written(record: dict[str, Any], tmp_path: Path) -> tuple[str | type[Exception], bytes]:
    """What the writer writes to a text stream, and to a file it opens (bytes)."""
    out = io.StringIO()
    try:
        JsonLinesWriter(stream=out).write(record)
        text: str | type[Exception] = out.getvalue()
    except (TypeError, ValueError) as exc:
        text = type(exc)
    path = tmp_path / "log.jsonl"
    writer = JsonLinesWriter(path, truncate=True)
    # (UnicodeEncodeError is a ValueError: lone surrogates are not UTF-8)
    with contextlib.suppress(TypeError, ValueError):
        writer.write(record)
    writer.close()
    return text, path.read_bytes()


def _check_same_as_reference(record: dict[str, Any], tmp_path: Path) -> None:
    expected = _reference_line(record)
    text, data = _written(record, tmp_path)
    assert text == expected
    if isinstance(expected, str):
        try:
            assert data == expected.encode()
        except UnicodeEncodeError:
            assert data == b""  # the standard encoder's text has a lone surrogate


@settings(max_examples=examples(400), deadline=None)
@given(flow_shaped)
def test_flow_shaped_records_get_the_standard_encoders_text(
    tmp_path_factory: pytest.TempPathFactory, check: str, record: dict[str, Any]
) -> None:
    _check_same_as_reference(record, tmp_path_factory.mktemp("flowlog"))


@settings(max_examples=examples(200), deadline=None)
@given(any_records)
def test_nested_records_get_the_standard_encoders_text(
    tmp_path_factory: pytest.TempPathFactory, check: str, record: dict[str, Any]
) -> None:
    _check_same_as_reference(record, tmp_path_factory.mktemp("flowlog"))


class Colour(enum.IntEnum):
    RED = 1


@dataclasses.dataclass
class Point:
    x: int


@pytest.mark.parametrize(
    "record",
    [
        {"when": datetime.datetime(2026, 1, 1)},  # orjson would write these three
        {"point": Point(1)},
        {"uuid": uuid.UUID(int=1)},
        {"colour": Colour.RED},  # the standard encoder writes 1 (int subclass)
        {1: "non-string key", "x": 0.5},
        {"x": 1e-05, "y": None, "z": float("nan")},
        {"x": 1e-05, "y": None, "z": float("-inf")},
    ],
)
def test_values_orjson_would_write_otherwise(
    record: dict[str, Any], tmp_path: Path, check: str
) -> None:
    _check_same_as_reference(record, tmp_path)


def test_flow_records_are_written_by_orjson(check: str) -> None:
    rec = {"ts": 1767261600.06087, "uid": "CB4Z", "duration": 0.0, "resp_asn": None, "ok": True}
    assert encode_line(rec) == (_REFERENCE(rec) + "\n").encode()
    short = {**rec, "duration": 3e-05, "tiny": -5e-324}  # under 1e-4: the repr's text
    line = encode_line(short)
    assert isinstance(line, bytes)
    assert line == (_REFERENCE(short) + "\n").encode()
    assert b'"duration":3e-05,' in line and b'"tiny":-5e-324}' in line
    assert encode_line({"a": [1e-05]}) == '{"a":[1e-05]}\n'  # nested: the standard encoder


def test_the_shape_table_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(flowlog, "_plain", None)  # the Python check keeps the table
    flowlog._shapes.clear()
    clears = flowlog.shape_clears
    for n in range(flowlog.MAX_SHAPES + 1):
        record = {f"k{i}": (0.5 if i == n else i) for i in range(n + 1)}
        assert encode_line(record) == (_REFERENCE(record) + "\n").encode()
    assert len(flowlog._shapes) == 1
    assert flowlog.shape_clears == clears + 1


@pytest.mark.skipif(_C_CHECK is None, reason="no compiled core")
@settings(max_examples=examples(400), deadline=None)
@given(st.one_of(flow_shaped, any_records))
def test_the_compiled_check_answers_as_pythons(record: dict[str, Any]) -> None:
    assert _C_CHECK is not None
    assert _C_CHECK(record) == flowlog._kind(record)


@pytest.mark.skipif(_C_CHECK is None, reason="no compiled core")
def test_the_compiled_check_on_edges_and_non_dicts() -> None:
    assert _C_CHECK is not None
    cases: list[dict[Any, Any]] = [
        {},
        {"a": 1e-4, "b": -1e-4, "c": 1.7976931348623157e308, "d": -0.0, "e": 0.0},
        {"a": 9.999999999999999e-05},
        {"a": 5e-324},
        {"a": float("inf")},
        {"a": float("nan")},
        {"a": Colour.RED},
        {"a": "x", "b": [1e-5]},
        {"a": 1e-5, "b": object()},  # not plain wins over a float to fix
        {1: True, None: None},  # the keys are not looked at (orjson refuses, then stdlib)
        {"a": 2**200},  # a plain int (orjson refuses it: the standard encoder then)
    ]
    for record in cases:
        assert _C_CHECK(record) == flowlog._kind(record), record
    assert [_C_CHECK(c) for c in cases[1:4]] == [0, 1, 1]
    others: list[object] = [[], {"a": 1}.items(), collections.OrderedDict(a=1), None]
    for other in others:
        assert _C_CHECK(other) is None
