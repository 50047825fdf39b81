"""Tests for netwatch.decode.fragments.Reassembler: bounded UDP datagram reassembly."""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netwatch.capture.files import open_capture
from netwatch.config import Config
from netwatch.decode.fragments import Reassembler, ReassemblyLimits
from netwatch.decode.frames import Decoded
from netwatch.deep.discovery import parse_discovery
from netwatch.pipeline import Pipeline
from netwatch.testing.pcapgen import Route, ip_bytes, mac_bytes, udp_fragment_frames
from tests.deep.discovery.builders import CAMERA_SCOPES, wsd_probe_matches
from tests.profile import examples

KEY = (b"\x0a\x00\x00\x05", b"\xef\xff\xff\xfa", 17, 0x1234)
PORTS = frozenset({3702, 5353, 53})


def split(data: bytes, size: int) -> list[tuple[int, bytes, bool]]:
    """(offset, piece, more) as IP fragments of ``size`` bytes (a multiple of 8)."""
    pieces = [(off, data[off : off + size]) for off in range(0, len(data), size)]
    return [(off, piece, off + size < len(data)) for off, piece in pieces]


def test_a_two_fragment_onvif_hello_is_rebuilt() -> None:
    """A 2,383-byte ONVIF Hello (UDP header + SOAP) arrives as two fragments."""
    datagram = b"\x0e\x76\x0e\x76" + b"\x09\x4f\x00\x00" + b"<Hello>" + b"x" * 2368
    (first, second) = split(datagram, 1480)
    r = Reassembler(PORTS)
    r.first(KEY, 3702, 3702, first[1], 0.0)
    assert len(r) == 1 and r.held_bytes == 1480
    assert r.later(KEY, second[0], second[1], second[2], 0.1) == datagram
    assert (len(r), r.held_bytes, r.completed) == (0, 0, 1)


def test_other_ports_are_not_kept() -> None:
    r = Reassembler(PORTS)
    r.first(KEY, 40000, 8000, b"x" * 1480, 0.0)
    assert len(r) == 0 and r.later(KEY, 1480, b"y" * 10, False, 0.1) is None


def test_pieces_out_of_order_after_the_first_complete_it() -> None:
    datagram = bytes(range(256)) * 20
    frags = split(datagram, 512)
    r = Reassembler(PORTS)
    r.first(KEY, 5353, 5353, frags[0][1], 0.0)
    rest = frags[1:]
    random.Random(1).shuffle(rest)
    results = [r.later(KEY, off, piece, more, 0.0) for off, piece, more in rest]
    assert results[-1] == datagram and all(x is None for x in results[:-1])


def test_overlap_and_inconsistent_end_drop_the_datagram() -> None:
    r = Reassembler(PORTS)
    r.first(KEY, 53, 5000, b"a" * 16, 0.0)
    assert r.later(KEY, 8, b"b" * 16, True, 0.0) is None  # overlaps 8..16
    assert (len(r), r.dropped, r.held_bytes) == (0, 1, 0)
    r.first(KEY, 53, 5000, b"a" * 16, 0.0)
    assert r.later(KEY, 32, b"c" * 8, False, 0.0) is None  # end 40, a gap at 16..32
    assert r.later(KEY, 16, b"d" * 8, False, 0.0) is None  # says end 24: inconsistent
    assert (len(r), r.dropped) == (0, 2)


def test_bounds_evict_the_oldest_and_count() -> None:
    limits = ReassemblyLimits(max_datagrams=2, max_datagram_bytes=100, max_total_bytes=150)
    r = Reassembler(PORTS, limits)
    for ipid in range(3):
        r.first((*KEY[:3], ipid), 53, 5000, b"x" * 40, 0.0)
    assert (len(r), r.evicted, r.held_bytes) == (2, 1, 80)
    r.first((*KEY[:3], 9), 53, 5000, b"x" * 100, 0.0)  # 2 entries, then 40 + 100 <= 150
    assert (len(r), r.evicted, r.held_bytes) == (2, 2, 140)
    assert r.later((*KEY[:3], 9), 100, b"y" * 8, True, 0.0) is None  # past 100 bytes
    assert (len(r), r.dropped, r.held_bytes) == (1, 1, 40)
    r.first(KEY, 53, 5000, b"x" * 101, 0.0)
    assert len(r) == 1 and r.dropped == 2


def test_expiry_and_unordered_later_fragments() -> None:
    r = Reassembler(PORTS, ReassemblyLimits(timeout_s=5.0))
    r.first(KEY, 53, 5000, b"x" * 8, 0.0)
    r.expire(4.0)
    assert len(r) == 1
    r.expire(6.0)
    assert (len(r), r.expired, r.held_bytes) == (0, 1, 0)
    assert r.later(KEY, 8, b"y", False, 7.0) is None  # its first fragment is gone
    assert len(r) == 0 and r.counts()["expired"] == 1


@settings(max_examples=examples(300), deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 200), st.binary(max_size=64), st.booleans()),
        max_size=40,
    )
)
def test_any_sequence_stays_bounded_and_never_raises(
    ops: list[tuple[int, int, bytes, bool]],
) -> None:
    limits = ReassemblyLimits(max_datagrams=3, max_datagram_bytes=128, max_total_bytes=256)
    r = Reassembler(PORTS, limits)
    for ipid, offset, data, more in ops:
        key = (*KEY[:3], ipid)
        if offset == 0:
            r.first(key, 53, 53, data, 0.0)
        else:
            whole = r.later(key, offset, data, more, 0.0)
            assert whole is None or len(whole) <= 128
        assert len(r) <= 3 and 0 <= r.held_bytes <= 256


def test_a_rebuilt_onvif_hello_names_the_vendor_its_first_fragment_cannot() -> None:
    """The wiring the walk is meant to do: the reassembled datagram reaches the parser."""
    padding = "onvif://www.onvif.org/location/" + "x" * 1900
    hello = wsd_probe_matches(kind="Hello", scopes=CAMERA_SCOPES + " " + padding)
    assert len(hello) > 1480
    datagram = struct.pack("!HHHH", 3702, 3702, 8 + len(hello), 0) + hello
    first, *rest = split(datagram, 1480)
    cut = parse_discovery("udp", 3702, 3702, first[1][8:])  # cut inside <Scopes>
    assert cut is None or (cut.vendor, cut.model) == (None, None)
    r = Reassembler(PORTS)
    r.first(KEY, 3702, 3702, first[1], 0.0)
    whole = [r.later(KEY, off, piece, more, 0.0) for off, piece, more in rest][-1]
    assert whole == datagram
    ident = parse_discovery("udp", 3702, 3702, whole[8:])
    assert ident is not None and ident.is_camera
    assert (ident.vendor, ident.model) == ("HIKVISION", "DS-2CD2143G0-I")


# -- wired into the decoder: the deep parsers see the whole datagram ----------------------

CAMERA = Route.of("02:00:5e:10:00:64", "192.168.1.64", "01:00:5e:7f:ff:fa", "239.255.255.250")
CAMERA_IP = ip_bytes("192.168.1.64")


def onvif_hello_frames(size: int = 2383) -> list[bytes]:
    """An ONVIF Hello of ``size`` bytes of UDP payload, as IPv4 fragments (MTU 1500); its
    Types and Scopes (what makes it a camera's) are in the second fragment."""
    hello = wsd_probe_matches(kind="Hello")
    padded = hello.replace(b"<d:Types>", b" " * (size - len(hello)) + b"<d:Types>")
    assert len(padded) == size
    return udp_fragment_frames(CAMERA, 3702, 3702, padded, ident=0x4242)


def run(frames: list[bytes], pipe: Pipeline | None = None) -> Pipeline:
    pipe = pipe or Pipeline(Config.from_yaml("{}", file="t.yaml"), lambda r: None,
                            on_alert=lambda a, n: None, geo=None)  # fmt: skip
    pipe.run((1_700_000_000.0 + i * 0.001, 1, len(f), f) for i, f in enumerate(frames))
    return pipe


def answer_count(message: bytes) -> int:
    """The answer count in a DNS message's header."""
    return int(struct.unpack_from("!6xH", message)[0])


def camera_seen(pipe: Pipeline) -> bool:
    assert pipe.detector is not None
    return pipe.detector.devices.camera(CAMERA_IP, mac_bytes("02:00:5e:10:00:64")) is not None


def test_a_fragmented_onvif_hello_makes_its_sender_a_camera() -> None:
    frames = onvif_hello_frames()
    assert len(frames) == 2
    pipe = run(frames)
    assert camera_seen(pipe)
    assert pipe.decoder.reassembler.counts()["completed"] == 1
    # the fragments are counted once each: two packets, the whole datagram's bytes
    pipe.finish()
    assert pipe.stats.packets == 2


def test_without_reassembly_the_fragmented_hello_is_not_read() -> None:
    """The control: the same frames with no port rebuilt leave the sender unknown."""
    pipe = Pipeline(Config.from_yaml("{}", file="t.yaml"), lambda r: None,
                    on_alert=lambda a, n: None, geo=None)  # fmt: skip
    pipe.decoder.reassembler = Reassembler(frozenset())
    assert not camera_seen(run(onvif_hello_frames(), pipe))


def test_flow_counters_do_not_change_with_reassembly() -> None:
    """Rebuilt datagrams are inspected only: the flow record counts the fragments."""
    records: list[dict[str, object]] = []
    pipe = Pipeline(Config.from_yaml("{}", file="t.yaml"), records.append, geo=None)
    run(onvif_hello_frames(), pipe).finish()
    (rec,) = records
    assert (rec["orig_pkts"], rec["orig_bytes"], rec["resp_pkts"]) == (2, 2383, 0)


def test_the_last_fragment_first_is_rebuilt_too() -> None:
    """A later fragment ahead of its first waits in the fragment tracker, then completes."""
    pipe = run(list(reversed(onvif_hello_frames(3100))))
    assert camera_seen(pipe)
    assert pipe.decoder.reassembler.counts()["completed"] == 1


CORPUS_DNS = (
    Path(__file__).resolve().parents[2].parent
    / "shared/corpus/pcaps/fragments/ndpi_dns_fragmented.pcap"
)


@pytest.mark.skipif(not CORPUS_DNS.exists(), reason=f"corpus capture absent: {CORPUS_DNS}")
def test_fragmented_dns_answers_of_a_real_capture_are_rebuilt_whole() -> None:
    """nDPI's dns_fragmented.pcap: seven large DNS answers (DNSKEY sets, IPv4 and IPv6) in
    fragments; each is rebuilt to exactly its UDP length and parsed once, as a whole."""
    with open_capture(CORPUS_DNS) as cap:
        frames = list(cap.packets())
    pipe = Pipeline(Config.from_yaml("{}", file="t.yaml"), lambda r: None, geo=None)
    seen: list[bytes] = []
    inspect = pipe.table.inspect_only

    def spy(ts: float, d: Decoded) -> None:
        seen.append(d[12][d[10] - 8 : d[10] + d[11]])
        inspect(ts, d)

    pipe.table.inspect_only = spy  # type: ignore[method-assign]
    pipe.run(iter(frames))
    assert pipe.decoder.reassembler.counts() == {
        "completed": 7, "dropped": 0, "evicted": 0, "expired": 0,
    }  # fmt: skip
    assert len(seen) == 7
    for datagram in seen:
        sport, length = struct.unpack_from("!H2xH", datagram)
        assert sport == 53 and length == len(datagram) > 1480
        assert answer_count(datagram[8:]) > 0
    assert pipe.inspector.parsed.get("dns_unparsed", 0) == 0


def test_a_tagged_datagram_is_kept_whatever_its_ports() -> None:
    r = Reassembler(frozenset({53}))
    key = (b"\x01" * 4, b"\x02" * 4, 17, 9)
    assert not r.first(key, 2152, 2152, b"a" * 16, 1.0)
    assert r.first(key, 2152, 2152, b"a" * 16, 1.0, tag="gtp")
    assert r.tag_of(key) == "gtp" and r.tag_of((b"", b"", 17, 1)) is None
    assert r.later(key, 16, b"b" * 8, False, 2.0) == b"a" * 16 + b"b" * 8
    assert r.tag_of(key) is None  # done: forgotten
    assert r.first(key, 1, 2, b"c" * 16, 3.0, tag="gtp")
    r.abandon(key)
    assert key not in r and r.counts()["dropped"] == 1
