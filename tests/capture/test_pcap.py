"""Classic pcap: header parsing and the record walker (fed bytes directly)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netwatch.capture.pcap import (
    MAX_CAPLEN,
    PCAP_HEADER_LEN,
    STOP,
    PcapHeader,
    ReadStats,
    Record,
    walk_pcap,
)
from tests.capture.builders import PcapRecord, frame_of, pcap_file, pcap_header, pcap_record
from tests.profile import examples


def read_all(data: bytes, final: bool = True) -> tuple[list[Record], ReadStats, int]:
    header = PcapHeader.parse(data[:PCAP_HEADER_LEN])
    stats = ReadStats()
    walk = walk_pcap(data, PCAP_HEADER_LEN, len(data), final, header=header, stats=stats)
    records: list[Record] = []
    while True:
        try:
            records.append(next(walk))
        except StopIteration as stop:
            return records, stats, stop.value


RECORDS: list[PcapRecord] = [
    (1_700_000_000, 1, frame_of(0, 60), 60),
    (1_700_000_001, 999_999, frame_of(1, 1514), 1514),
    (1_700_000_002, 500_000, frame_of(2, 150), 1400),  # snaplen-truncated: wirelen > caplen
]


@pytest.mark.parametrize(
    ("order", "nanos", "fmt"),
    [("<", False, "pcap"), (">", False, "pcap"), ("<", True, "pcap-ns"), (">", True, "pcap-ns")],
)
def test_header_variants(order: str, nanos: bool, fmt: str) -> None:
    header = PcapHeader.parse(pcap_header(order=order, nanos=nanos, linktype=113))
    assert (header.format, header.byteorder, header.linktype) == (fmt, order, 113)
    assert header.tick_s == (1e-9 if nanos else 1e-6)


@pytest.mark.parametrize(("order", "nanos"), [("<", False), (">", False), ("<", True), (">", True)])
def test_records_round_trip(order: str, nanos: bool) -> None:
    tick = 1e-9 if nanos else 1e-6
    records = [(s, f * (1000 if nanos else 1), fr, wl) for s, f, fr, wl in RECORDS]
    got, stats, end = read_all(pcap_file(records, order=order, nanos=nanos))
    assert [(r[1], r[2], r[3]) for r in got] == [(1, wl, fr) for _, _, fr, wl in records]
    for (ts, *_), (sec, frac, _, _) in zip(got, records, strict=True):
        assert ts == pytest.approx(sec + frac * tick, abs=1e-6)
    assert stats == ReadStats(records=3)
    assert end == len(pcap_file(records, order=order, nanos=nanos))


def test_dlt_raw_alias_in_header_is_normalised() -> None:
    got, _, _ = read_all(pcap_file(RECORDS[:1], linktype=12))
    assert got[0][1] == 101


def test_nanosecond_timestamp_kept_to_the_microsecond() -> None:
    got, _, _ = read_all(pcap_file([(1_687_339_233, 516_011_949, b"x" * 20, 20)], nanos=True))
    assert abs(got[0][0] - 1_687_339_233.516012) < 1e-6


def test_cut_at_every_offset_of_the_last_record() -> None:
    data = pcap_file(RECORDS)
    last_start = len(data) - len(pcap_record(*RECORDS[-1]))
    complete, _, _ = read_all(data)
    for cut in range(last_start, len(data)):
        got, stats, end = read_all(data[:cut])
        assert got == complete[:-1], cut
        assert stats.truncated_tail is (cut > last_start), cut
        assert end == last_start


def test_not_final_stops_before_incomplete_record_without_flag() -> None:
    data = pcap_file(RECORDS)
    got, stats, end = read_all(data[:-10], final=False)
    assert len(got) == 2
    assert not stats.truncated_tail
    assert end == len(data) - len(pcap_record(*RECORDS[-1]))


def test_zero_caplen_is_skipped_and_counted() -> None:
    data = pcap_file([RECORDS[0], (1, 2, b"", 0), RECORDS[1]])
    got, stats, _ = read_all(data)
    assert [r[3] for r in got] == [RECORDS[0][2], RECORDS[1][2]]
    assert (stats.records, stats.empty_records, stats.truncated_tail) == (2, 1, False)


def test_absurd_caplen_stops_and_is_counted() -> None:
    bogus = struct.pack("<IIII", 1, 2, MAX_CAPLEN + 1, 60) + b"\0" * 64
    data = pcap_file(RECORDS[:1]) + bogus + pcap_record(1, 2, b"x" * 60, 60)
    got, stats, end = read_all(data)
    assert len(got) == 1
    assert (stats.caplen_exceeds, stats.records) == (1, 1)
    assert end == STOP


def test_caplen_at_the_limit_is_accepted() -> None:
    frame = b"\xab" * MAX_CAPLEN
    got, stats, _ = read_all(pcap_file([(1, 2, frame, MAX_CAPLEN)]))
    assert got[0][3] == frame
    assert stats.caplen_exceeds == 0


@pytest.mark.parametrize(
    ("head", "reason"),
    [
        (b"GET / HTTP/1.1\r\n", "not a pcap file (magic 0x47455420)"),
        (pcap_header()[:10], "truncated pcap header (10 of 24 bytes)"),
    ],
)
def test_header_errors(head: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        PcapHeader.parse(head)


@settings(max_examples=examples(300), deadline=None)
@given(tail=st.binary(max_size=400), order=st.sampled_from("<>"), nanos=st.booleans())
def test_arbitrary_bytes_never_raise(tail: bytes, order: str, nanos: bool) -> None:
    got, stats, _ = read_all(pcap_header(order=order, nanos=nanos) + tail)
    assert stats.records == len(got)
    assert all(0 < len(frame) <= MAX_CAPLEN for _, _, _, frame in got)


@settings(max_examples=examples(100), deadline=None)
@given(
    records=st.lists(
        st.tuples(
            st.integers(0, 2**32 - 1),
            st.integers(0, 999_999),
            st.binary(min_size=1, max_size=80),
            st.integers(0, 2**32 - 1),
        ),
        max_size=12,
    ),
    order=st.sampled_from("<>"),
)
def test_generated_files_round_trip(records: list[PcapRecord], order: str) -> None:
    got, stats, _ = read_all(pcap_file(records, order=order))
    assert [(wl, fr) for _, _, wl, fr in got] == [(wl, fr) for _, _, fr, wl in records]
    assert [ts for ts, *_ in got] == pytest.approx([s + f * 1e-6 for s, f, _, _ in records])
    assert not stats.truncated_tail
