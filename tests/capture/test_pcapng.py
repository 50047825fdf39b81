"""pcapng: block walker on synthetic files (sections, interfaces, packet block kinds, damage)."""

from __future__ import annotations

import struct
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netwatch.capture.pcap import MAX_CAPLEN, STOP, ReadStats, Record
from netwatch.capture.pcapng import (
    MAX_TS_S,
    MAX_TSRESOL_POW2,
    MAX_TSRESOL_POW10,
    PcapngWalker,
    check_head,
)
from tests.capture.builders import block, epb, frame_of, idb, obsolete_pb, option, shb, spb
from tests.profile import examples

TS_US = 1_700_000_000_123_456  # a timestamp in microseconds


def read_all(data: bytes, final: bool = True) -> tuple[list[Record], ReadStats, int]:
    walker = PcapngWalker(ReadStats())
    walk = walker.walk(data, 0, len(data), final)
    records: list[Record] = []
    while True:
        try:
            records.append(next(walk))
        except StopIteration as stop:
            return records, walker.stats, stop.value


def two_interfaces(order: str = "<") -> bytes:
    """Ethernet in µs, Linux SLL in ns, raw IP in 2^-10 s with a 100 s offset."""
    return (
        shb(order=order)
        + idb(1, order=order)
        + idb(113, order=order, tsresol=9)
        + idb(101, order=order, tsresol=0x80 | 10, tsoffset=100)
        + epb(0, TS_US, frame_of(0), order=order)
        + epb(1, 1_700_000_000_123_456_789, frame_of(1, 80), 1500, order=order)
        + epb(2, 5 * 1024 + 512, frame_of(2, 40), order=order)
    )


@pytest.mark.parametrize("order", "<>")
def test_interfaces_with_own_linktype_and_resolution(order: str) -> None:
    got, stats, end = read_all(two_interfaces(order))
    assert [(lt, wl, fr) for _, lt, wl, fr in got] == [
        (1, 60, frame_of(0)),
        (113, 1500, frame_of(1, 80)),
        (101, 40, frame_of(2, 40)),
    ]
    assert got[0][0] == pytest.approx(1_700_000_000.123456, abs=1e-6)
    assert got[1][0] == pytest.approx(1_700_000_000.123457, abs=1e-6)
    assert got[2][0] == 105.5
    assert stats == ReadStats(records=3)
    assert end == len(two_interfaces(order))


def test_simple_packet_blocks_reuse_last_timestamp_and_respect_snaplen() -> None:
    data = (
        shb()
        + idb(1, snaplen=64)
        + spb(frame_of(0, 61))  # padded to 64 in the block: padding is not captured
        + epb(0, TS_US, frame_of(1))
        + spb(frame_of(2, 64), wirelen=1000)  # cut at the snaplen by the writer
    )
    got, stats, _ = read_all(data)
    assert [(ts, wl, fr) for ts, _, wl, fr in got] == [
        (0.0, 61, frame_of(0, 61)),
        (got[1][0], 60, frame_of(1)),
        (got[1][0], 1000, frame_of(2, 64)),
    ]
    assert got[1][0] == pytest.approx(TS_US / 1e6)
    assert stats.records == 3


def test_simple_packet_block_without_interface_is_bad() -> None:
    got, stats, _ = read_all(shb() + spb(frame_of(0)) + idb(1) + spb(frame_of(1)))
    assert [fr for *_, fr in got] == [frame_of(1)]
    assert stats.bad_blocks == 1


def test_obsolete_packet_block() -> None:
    got, _, _ = read_all(shb() + idb(1, tsresol=3) + obsolete_pb(0, 1_500, frame_of(7)))
    assert got == [(1.5, 1, 60, frame_of(7))]


def test_sections_switch_byte_order_and_reset_interfaces() -> None:
    data = (
        shb(order="<")
        + idb(1, order="<")
        + epb(0, TS_US, frame_of(0), order="<")
        + shb(order=">")
        + idb(276, order=">", tsresol=9)
        + epb(0, 2_000_000_000_000_000_000, frame_of(1), order=">")
        + epb(1, 0, frame_of(2), order=">")  # interface 1 of the first section is gone
    )
    got, stats, _ = read_all(data)
    assert [(lt, fr) for _, lt, _, fr in got] == [(1, frame_of(0)), (276, frame_of(1))]
    assert got[1][0] == pytest.approx(2_000_000_000.0, abs=1e-6)
    assert stats.bad_blocks == 1


def test_other_blocks_and_packet_options_are_skipped() -> None:
    comment = option(1, b"a comment", order="<") + option(0, b"")
    with_options = epb(0, TS_US, frame_of(3, 62))
    with_options = block(6, with_options[8:-4] + comment)  # same EPB body plus options
    data = (
        shb()
        + block(4, b"\x00\x00\x00\x00")  # name resolution
        + idb(1)
        + block(5, struct.pack("<III", 0, 0, 0))  # interface statistics
        + block(10, b"TLSK" + struct.pack("<I", 0))  # decryption secrets
        + block(0x00000BAD, b"\x00\x00\x7e\x9d" + b"custom")  # custom block
        + with_options
    )
    got, stats, _ = read_all(data)
    assert [fr for *_, fr in got] == [frame_of(3, 62)]
    assert stats == ReadStats(records=1)


def test_unknown_interface_is_counted_and_skipped() -> None:
    got, stats, _ = read_all(shb() + idb(1) + epb(5, TS_US, frame_of(0)) + epb(0, 1, frame_of(1)))
    assert [fr for *_, fr in got] == [frame_of(1)]
    assert stats.bad_blocks == 1


def test_caplen_past_the_block_is_bad() -> None:
    broken = bytearray(epb(0, TS_US, frame_of(0)))
    broken[20:24] = struct.pack("<I", 200)  # caplen larger than the block body
    got, stats, _ = read_all(shb() + idb(1) + bytes(broken) + epb(0, 1, frame_of(1)))
    assert [fr for *_, fr in got] == [frame_of(1)]
    assert stats.bad_blocks == 1


def test_empty_and_oversized_packets_are_skipped() -> None:
    huge = b"\0" * (MAX_CAPLEN + 4)
    data = shb() + idb(1) + epb(0, 1, b"", 60) + epb(0, 2, huge) + epb(0, 3, frame_of(0))
    got, stats, _ = read_all(data)
    assert [fr for *_, fr in got] == [frame_of(0)]
    assert (stats.empty_records, stats.caplen_exceeds, stats.bad_blocks) == (1, 1, 0)


def with_length(data: bytes, length: int) -> bytes:
    return data[:4] + struct.pack("<I", length) + data[8:]


@pytest.mark.parametrize(
    "broken",
    [
        with_length(epb(0, 2, frame_of(1)), 90),  # not a multiple of 4
        with_length(epb(0, 2, frame_of(1)), 8),  # shorter than any block
        with_length(epb(0, 2, frame_of(1)), 1 << 30),  # absurd length
        block(4, b"\0" * 8)[:-4] + struct.pack("<I", 24),  # trailing length differs
    ],
)
def test_broken_framing_stops_the_walk(broken: bytes) -> None:
    data = shb() + idb(1) + epb(0, 1, frame_of(0)) + broken + epb(0, 3, frame_of(2))
    got, stats, end = read_all(data)
    assert [fr for *_, fr in got] == [frame_of(0)]
    assert (stats.bad_blocks, end) == (1, STOP)


def test_unknown_byte_order_in_a_later_section_stops() -> None:
    bad_shb = bytearray(shb())
    bad_shb[8:12] = b"\x00\x01\x02\x03"
    got, stats, end = read_all(shb() + idb(1) + epb(0, 1, frame_of(0)) + bytes(bad_shb))
    assert len(got) == 1
    assert (stats.bad_blocks, end) == (1, STOP)


def test_cut_at_every_offset_of_the_last_block() -> None:
    data = two_interfaces()
    last = epb(2, 5 * 1024 + 512, frame_of(2, 40))
    complete, _, _ = read_all(data)
    for cut in range(len(data) - len(last), len(data)):
        got, stats, end = read_all(data[:cut])
        assert got == complete[:-1], cut
        assert stats.truncated_tail is (cut > len(data) - len(last)), cut
        assert end in (STOP, len(data) - len(last))


def test_returned_offset_resumes_at_the_incomplete_block() -> None:
    data = two_interfaces()
    stats = ReadStats()
    walker = PcapngWalker(stats)
    split = len(data) - 30
    walk = walker.walk(data[:split], 0, split, False)
    got: list[Record] = []
    while True:
        try:
            got.append(next(walk))
        except StopIteration as stop:
            resume = stop.value
            break
    assert resume == len(data) - len(epb(2, 5 * 1024 + 512, frame_of(2, 40)))
    got += walker.walk(data[resume:], 0, len(data) - resume, True)
    assert got == read_all(data)[0]
    assert not stats.truncated_tail


@pytest.mark.parametrize(
    ("head", "reason"),
    [
        (b"\n\r\r\n\x1c\0\0\0", "truncated pcapng section header"),
        (b"\n\r\r\n\x1c\0\0\0\xff\xff\xff\xff", "byte-order magic 0xffffffff"),
        (b"\xd4\xc3\xb2\xa1", "not a pcapng file"),
    ],
)
def test_check_head_errors(head: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        check_head(head)


@settings(max_examples=examples(300), deadline=None)
@given(tail=st.binary(max_size=300), order=st.sampled_from("<>"))
def test_arbitrary_blocks_never_raise(tail: bytes, order: str) -> None:
    got, stats, _ = read_all(shb(order=order) + idb(1, order=order) + tail)
    assert stats.records == len(got)


@settings(max_examples=examples(300), deadline=None)
@given(position=st.integers(0, 10_000), value=st.integers(0, 255), cut=st.integers(0, 10_000))
def test_damaged_files_never_raise(position: int, value: int, cut: int) -> None:
    data = bytearray(two_interfaces() + spb(frame_of(9)) + obsolete_pb(1, 7, frame_of(8)))
    data[position % len(data)] = value
    got, stats, _ = read_all(bytes(data[: len(data) - cut % 40]))
    assert stats.records == len(got) <= 5


# A packet timestamp in 2023, in microseconds.
GOOD_TS = 1_700_000_000_000_000


@pytest.mark.parametrize(
    ("tsresol", "tsoffset"),
    [
        (MAX_TSRESOL_POW10 + 1, None),  # 10^20 units/s: more than 64 bits
        (127, None),
        (0x80 | (MAX_TSRESOL_POW2 + 1), None),
        (0xFF, None),
        (None, (1 << 63) - 1),
        (None, -(1 << 63)),
        (None, int(MAX_TS_S)),
    ],
    ids=["pow10-20", "pow10-127", "pow2-64", "pow2-127", "offset-max", "offset-min", "offset-2106"],
)
def test_out_of_range_interface_options_make_a_bad_interface(
    tsresol: int | None, tsoffset: int | None
) -> None:
    data = (
        shb()
        + idb(1, tsresol=tsresol, tsoffset=tsoffset)  # interface 0: bad
        + idb(113)  # interface 1: fine, and still numbered 1
        + epb(0, GOOD_TS, frame_of(0))
        + obsolete_pb(0, GOOD_TS, frame_of(1))
        + spb(frame_of(2))
        + epb(1, GOOD_TS, frame_of(3))
    )
    got, stats, end = read_all(data)
    assert [(lt, fr) for _, lt, _, fr in got] == [(113, frame_of(3))]
    assert got[0][0] == pytest.approx(1_700_000_000.0)
    assert stats == ReadStats(records=1, bad_blocks=4)  # the IDB and its three packets
    assert end == len(data)


def test_largest_resolutions_in_range_are_kept() -> None:
    data = (
        shb()
        + idb(1, tsresol=MAX_TSRESOL_POW10)
        + idb(1, tsresol=0x80 | MAX_TSRESOL_POW2)
        + epb(0, 10**19, frame_of(0))
        + epb(1, 1 << 63, frame_of(1))
    )
    got, stats, _ = read_all(data)
    assert [ts for ts, *_ in got] == [pytest.approx(1.0), 1.0] and stats == ReadStats(records=2)


@pytest.mark.parametrize(
    ("tsresol", "tsoffset", "units", "good_units"),
    [
        (0, None, (1 << 64) - 1, 1 << 31),  # seconds: 64-bit counts reach 5.8e11 years
        (0, None, 1 << 32, (1 << 32) - 1),  # exactly MAX_TS_S, and one second before
        (None, -(10**9), 5, 10**15 + 5),  # before 1970
        (None, int(MAX_TS_S) - 1, 10**6, 10**5),  # past 2106 by the offset
    ],
    ids=["seconds-u64", "seconds-2106", "negative", "offset-past-2106"],
)
def test_packet_timestamps_out_of_range_are_bad_blocks(
    tsresol: int | None, tsoffset: int | None, units: int, good_units: int
) -> None:
    data = (
        shb()
        + idb(1, tsresol=tsresol, tsoffset=tsoffset)
        + epb(0, units, frame_of(0))
        + obsolete_pb(0, units, frame_of(1))
        + epb(0, good_units, frame_of(2))
        + spb(frame_of(3))  # reuses the last good timestamp
    )
    got, stats, end = read_all(data)
    assert [fr for *_, fr in got] == [frame_of(2), frame_of(3)]
    assert all(0.0 <= ts < MAX_TS_S for ts, *_ in got) and got[0][0] == got[1][0]
    assert stats == ReadStats(records=2, bad_blocks=2)
    assert end == len(data)


@settings(max_examples=examples(300), deadline=None)
@given(
    tsresol=st.integers(0, 255),
    tsoffset=st.integers(-(1 << 63), (1 << 63) - 1),
    units=st.integers(0, (1 << 64) - 1),
)
def test_every_timestamp_read_can_be_formatted(tsresol: int, tsoffset: int, units: int) -> None:
    """Whatever the options and the packet say, a timestamp that leaves the reader is one
    the rest of the daemon can format (the alert record's RFC 3339 time)."""
    data = shb() + idb(1, tsresol=tsresol, tsoffset=tsoffset) + epb(0, units, frame_of(0))
    data += obsolete_pb(0, units, frame_of(1)) + spb(frame_of(2))
    got, stats, _ = read_all(data)
    assert len(got) + stats.bad_blocks >= 3
    for ts, *_ in got:
        assert 0.0 <= ts < MAX_TS_S
        datetime.fromtimestamp(ts, UTC).isoformat()
