"""Tests for the ThroughTek Kalay (TUTK IOTC) parser: descrambling, header, flow results, rules.

Packets are built here with an encoder written from the published description of
``TransCodePartial`` (rotate right, XOR with "Charlie is the d", shuffle, rotate right),
checked against an independent source's test vector; the parser's decoder is never used to
build its own input. The corpus test runs the parser over every UDP payload of the real
captures (none of which is Kalay) and skips when ../shared/corpus is absent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netwatch.capture.files import CaptureError, open_capture
from netwatch.decode.frames import Decoder
from netwatch.deep.discovery.identity import DeviceIdentity
from netwatch.deep.kalay import (
    MAGIC_MASK,
    MAGIC_VALUE,
    MESSAGES,
    MIN_CUT_BYTES,
    PLATFORM,
    KalayParser,
    _magic_filter,
    descramble_block,
    kalay_of,
    p2p_of,
    parse_kalay,
    uid_of,
)
from netwatch.deep.pppp import Kind
from netwatch.flow.table import PROTO_UDP, Flow
from netwatch.testing import pcapgen as g
from tests.profile import examples
from tests.rules.test_rules import CAM, OUTSIDER, replay, route

CAMERA = bytes([192, 168, 1, 161])
PHONE = bytes([192, 168, 1, 20])
MASTER = bytes([50, 19, 5, 7])
UID = b"ABCD1234EFGH5678JKLM"  # made-up 20-character UID
#: TransCodePartial of 16 zero bytes, as published by an independent Kalay client
#: (seeds/cloud_endpoints.yaml [KALAY-CUBOAI]).
ZERO_BLOCK_WIRE = bytes.fromhex("6e2e8d8c40d040ca2d6d280c40e4cad8")

# ------------------------------------------------------------------ the test's own encoder

_KEY = b"Charlie is the d"
_PERM = (11, 9, 8, 15, 13, 10, 12, 14, 2, 1, 5, 0, 6, 4, 7, 3)


def _rotr(x: int, n: int) -> int:
    return ((x >> n) | (x << (32 - n))) & 0xFFFFFFFF


def _words(b: bytes) -> list[int]:
    return [int.from_bytes(b[i : i + 4], "little") for i in range(0, 16, 4)]


def _bytes(words: list[int]) -> bytes:
    return b"".join(w.to_bytes(4, "little") for w in words)


def scramble_block(clear: bytes) -> bytes:
    """One block of TransCodePartial, step by step as the sources describe it."""
    key = _words(_KEY)
    step1 = _bytes([_rotr(w, 1 + 4 * i) ^ key[i] for i, w in enumerate(_words(clear))])
    step2 = bytes(step1[_PERM[j]] for j in range(16))
    return _bytes([_rotr(w, 3 + 4 * i) for i, w in enumerate(_words(step2))])


def scramble(clear: bytes) -> bytes:
    """A whole datagram: full blocks, then the tail XORed with the key."""
    whole = len(clear) - len(clear) % 16
    tail = clear[whole:]
    blocks = b"".join(scramble_block(clear[i : i + 16]) for i in range(0, whole, 16))
    return blocks + bytes(c ^ k for c, k in zip(tail, _KEY, strict=False))


def iotc(
    code: int, body: bytes = b"", *, role: int = 0x21, version: int = 0x19, flags: int = 0x02
) -> bytes:
    """A clear IOTC datagram: magic, version, flags, body length, counter, type, role."""
    head = bytes([0x04, 0x02, version, flags]) + len(body).to_bytes(2, "little") + bytes(2)
    head += code.to_bytes(2, "little") + bytes([role]) + bytes(5)
    return head + body


def msg(code: int, body: bytes = b"", **kw: int) -> bytes:
    """The same datagram as it goes on the wire."""
    return scramble(iotc(code, body, **kw))


def with_uid(rest: int = 32) -> bytes:
    return UID + bytes(rest)


# ------------------------------------------------------------------ descrambling


def test_the_zero_block_matches_the_published_vector() -> None:
    assert scramble_block(bytes(16)) == ZERO_BLOCK_WIRE
    assert descramble_block(ZERO_BLOCK_WIRE) == bytes(16)


@settings(max_examples=examples(2000), deadline=None)
@given(st.binary(min_size=16, max_size=16))
def test_descrambling_undoes_scrambling(block: bytes) -> None:
    assert descramble_block(scramble_block(block)) == block


@settings(max_examples=examples(2000), deadline=None)
@given(
    st.sampled_from([b"\x04\x02", b"\x04\x03", b"\x05\x02", b"\x02\x04"]),
    st.binary(min_size=14, max_size=14),
)
def test_the_wire_mask_is_exactly_the_magic(first: bytes, rest: bytes) -> None:
    wire = scramble_block(first + rest)
    passes = int.from_bytes(wire[8:16], "little") & MAGIC_MASK == MAGIC_VALUE
    assert passes == (first == b"\x04\x02")


def test_the_written_mask_is_the_one_the_transform_gives() -> None:
    assert _magic_filter() == (MAGIC_MASK, MAGIC_VALUE)


# ------------------------------------------------------------------ messages


def test_lan_search_and_its_answer_carry_the_uid() -> None:
    search = parse_kalay(msg(0x0601, with_uid(52)))
    assert search is not None and search.name == "LAN_SEARCH" and search.uid == UID.decode()
    assert search.type is not None and search.type.kind is Kind.LAN
    answer = parse_kalay(msg(0x0602, with_uid(164), role=0x12, version=0x1D))
    assert answer is not None and answer.name == "LAN_SEARCH_R" and answer.version == 0x1D


def test_kinds_of_the_documented_types() -> None:
    cases = {
        0x1007: ("QUERY", Kind.REGISTER),
        0x0402: ("KNOCK", Kind.TRAVERSAL),
        0x0504: ("RELAY_DATA", Kind.RELAY),
        0x0408: ("SESSION_DATA_R", Kind.SESSION),
    }
    for code, (name, kind) in cases.items():
        found = parse_kalay(msg(code, with_uid(18)))
        assert found is not None and found.name == name, hex(code)
        assert found.type is not None and found.type.kind is kind


def test_an_undocumented_type_is_kalay_by_its_header() -> None:
    found = parse_kalay(msg(0x7777, bytes(40)))
    assert found is not None and found.type is None and found.name == "0x7777"


def test_an_empty_uid_field_is_no_uid() -> None:
    found = parse_kalay(msg(0x0601, bytes(72)))  # a search for every device
    assert found is not None and found.uid is None


def test_uid_format() -> None:
    assert uid_of(UID) == UID.decode()
    assert uid_of(b"abcd1234efgh5678jklm") is None  # the SDK sends it uppercase
    assert uid_of(UID[:19] + b"\0") is None
    assert uid_of(UID[:19]) is None


def test_every_listed_type_parses() -> None:
    for code, mtype in MESSAGES.items():
        found = parse_kalay(msg(code, with_uid(40)))
        assert found is not None and found.code == code and found.type is mtype, hex(code)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        msg(0x0601)[:15],  # shorter than a header
        iotc(0x0601, with_uid()),  # not scrambled: 04 02 in clear is not Kalay
        msg(0x0601, with_uid()) + b"\x00",  # a byte more than the length says
        scramble(iotc(0x0601, with_uid())[:40]),  # the length says more (not a snaplen cut)
        scramble(b"\x04\x03" + iotc(0x0601, with_uid())[2:]),  # wrong magic
        b"\xf1\x00\x00\x00",  # PPPP HELLO
        bytes(64),
    ],
)
def test_not_kalay(data: bytes) -> None:
    assert parse_kalay(data) is None


def test_a_snaplen_cut_is_accepted_when_enough_was_kept() -> None:
    full = msg(0x0407, bytes(1000), flags=0x0B)
    assert parse_kalay(full[:MIN_CUT_BYTES]) is not None
    assert parse_kalay(full[: MIN_CUT_BYTES - 1]) is None


@settings(max_examples=examples(3000), deadline=None)
@given(st.binary(max_size=160))
def test_never_raises(data: bytes) -> None:
    found = parse_kalay(data)
    assert found is None or len(data) >= 16


@settings(max_examples=examples(1000), deadline=None)
@given(st.sampled_from(sorted(MESSAGES)), st.binary(max_size=40), st.integers(1, 40))
def test_a_wrong_length_field_is_rejected(code: int, body: bytes, extra: int) -> None:
    clear = bytearray(iotc(code, body))
    clear[4:6] = (len(body) + extra).to_bytes(2, "little")  # says more than it holds
    assert parse_kalay(scramble(bytes(clear))) is None  # short datagrams are never cuts


@settings(max_examples=examples(500), deadline=None)
@given(st.binary(min_size=1, max_size=200))
def test_hostile_bodies_behind_a_valid_header(body: bytes) -> None:
    found = parse_kalay(msg(0x0602, body))
    assert found is not None and found.name == "LAN_SEARCH_R"
    assert found.uid is None or len(found.uid) == 20


# ------------------------------------------------------------------ the registered parser


@dataclass
class FakeContext:
    names: object = None
    counts: dict[str, int] = field(default_factory=dict)
    cameras: list[tuple[bytes, str | None, str]] = field(default_factory=list)

    def count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    def camera(
        self, host: bytes, vendor: str | None, how: str, ident: DeviceIdentity | None
    ) -> None:
        self.cameras.append((host, vendor, how))

    def banner(self, flow: Flow, field: str, value: str) -> None:
        """Unused by this parser."""


def _flow(orig: bytes, resp: bytes, oport: int, rport: int) -> Flow:
    flow = Flow(("k",), "C1", 0.0, PROTO_UDP)
    flow.orig_h, flow.resp_h, flow.orig_p, flow.resp_p = orig, resp, oport, rport
    return flow


def test_the_parser_records_a_lan_search_and_the_device_that_answers() -> None:
    parser, ctx, flow = KalayParser(), FakeContext(), _flow(PHONE, CAMERA, 40000, 32761)
    parser.udp(ctx, flow, True, msg(0x0601, with_uid(52)), 0.0)  # type: ignore[arg-type]
    parser.udp(ctx, flow, False, msg(0x0602, with_uid(164), role=0x12), 0.1)  # type: ignore[arg-type]
    info = kalay_of(flow.app)
    assert info is not None and flow.app is not None
    assert flow.app["p2p"] == PLATFORM and flow.app["service"] == ["kalay"]
    assert info.sent(True) == (["LAN_SEARCH"], {Kind.LAN})
    assert info.sent(False) == (["LAN_SEARCH_R"], {Kind.LAN})
    assert info.uid == UID.decode() and info.version == 0x19
    assert ctx.cameras == [(CAMERA, None, "kalay:LAN_SEARCH_R")]  # the answer names the device
    assert ctx.counts == {"kalay": 2}
    assert p2p_of(flow.app) is info
    assert info.evidence() == {
        "platform": PLATFORM,
        "kalay_messages": ["LAN_SEARCH", "LAN_SEARCH_R"],
        "device_id": UID.decode(),
        "iotc_version": 0x19,
    }


def test_an_undocumented_type_counts_as_a_master_exchange_only_on_the_master_port() -> None:
    parser, ctx = KalayParser(), FakeContext()
    master = _flow(CAMERA, MASTER, 41000, 10240)
    peer = _flow(CAMERA, MASTER, 41000, 23456)
    for flow in (master, peer):
        parser.udp(ctx, flow, True, msg(0x0110, bytes(40)), 0.0)  # type: ignore[arg-type]
    found_master, found_peer = kalay_of(master.app), kalay_of(peer.app)
    assert found_master is not None and found_master.sent(True) == (["0x0110"], {Kind.REGISTER})
    assert found_peer is not None and found_peer.sent(True) == (["0x0110"], set())
    assert not ctx.cameras


def test_the_parser_ignores_other_payloads() -> None:
    parser, ctx, flow = KalayParser(), FakeContext(), _flow(CAMERA, MASTER, 41000, 10240)
    for data in (b"\xf1\x00\x00\x00", bytes(15), bytes(100), iotc(0x0601, with_uid())):
        parser.udp(ctx, flow, True, data, 0.0)  # type: ignore[arg-type]
    assert flow.app is None and ctx.counts == {}


def test_names_per_direction_are_bounded() -> None:
    parser, ctx, flow = KalayParser(), FakeContext(), _flow(CAMERA, MASTER, 41000, 23456)
    for code in range(0x7000, 0x7040):
        parser.udp(ctx, flow, True, msg(code, bytes(8)), 0.0)  # type: ignore[arg-type]
    info = kalay_of(flow.app)
    assert info is not None and len(info.sent_o) == 12


# ------------------------------------------------------------------ through the pipeline


def test_end_to_end_the_rules_name_throughtek_kalay(tmp_path: Path) -> None:
    """A camera queries a Kalay master on UDP 10240, then knocks to a remote viewer."""
    t = g.Trace()
    master, viewer = "52.58.3.1", OUTSIDER
    query = msg(0x1007, with_uid(18), role=0x18)
    t.add(1_000_000, g.udp_frame(route(master), 41000, 10240, query))
    t.add(1_010_000, g.udp_frame(route(master).reverse(), 10240, 41000, msg(0x1008, bytes(184))))
    knock = msg(0x0402, UID + bytes(16), role=0x33)
    t.add(2_000_000, g.udp_frame(route(viewer), 41000, 52000, knock))
    t.add(2_010_000, g.udp_frame(route(viewer).reverse(), 52000, 41000, msg(0x0404, with_uid())))
    t.add(2_020_000, g.udp_frame(route(viewer), 41000, 52000, msg(0x0408, bytes(600))))
    alerts = replay(tmp_path, t)
    by_rule: dict[str, list[dict[str, Any]]] = {}
    for alert in alerts:
        by_rule.setdefault(alert["rule"], []).append(alert)
    (reg,) = by_rule["cloud_registration"]
    assert reg["peer_ip"] == master and reg["peer_port"] == 10240
    assert "registers with a ThroughTek Kalay P2P server" in reg["summary"]
    assert reg["evidence"]["platform"] == PLATFORM
    assert reg["evidence"]["kalay_messages"] == ["QUERY", "QUERY_R"]
    assert reg["evidence"]["device_id"] == UID.decode()
    (nat,) = by_rule["nat_traversal"]
    assert nat["peer_ip"] == viewer and nat["severity"] == "high"
    assert f"runs NAT traversal ({PLATFORM}: KNOCK" in nat["summary"]
    assert nat["evidence"]["platform"] == PLATFORM and PLATFORM in nat["evidence"]["vendors"]
    assert CAM in (reg["device_ip"], nat["device_ip"])


def test_end_to_end_without_the_parser_nothing_names_kalay(tmp_path: Path) -> None:
    """IOTC in clear (04 02 unscrambled) is not Kalay on the wire: no alert names the platform."""
    t = g.Trace()
    t.add(1_000_000, g.udp_frame(route("52.58.3.1"), 41000, 23000, iotc(0x1007, with_uid(18))))
    alerts = replay(tmp_path, t)
    assert not [a for a in alerts if a["evidence"].get("platform") == PLATFORM]


# ------------------------------------------------------------------ real captures


@dataclass
class Scan:
    payloads: int = 0
    matched: list[str] = field(default_factory=list)


def scan_corpus(root: Path) -> Scan:
    """Run the parser over every UDP payload of every capture under ``root``."""
    scan = Scan()
    for path in sorted(p for p in root.rglob("*") if p.suffix in {".pcap", ".pcapng", ".gz"}):
        try:
            capture = open_capture(path)
        except CaptureError:  # a capture the reader refuses is not this test's
            continue
        decoder = Decoder()
        for ts, linktype, wirelen, frame in capture.packets():
            d = decoder.decode(linktype, frame, wirelen, ts)
            if d is None or d[2] != PROTO_UDP or d[11] <= 0:
                continue
            scan.payloads += 1
            if parse_kalay(d[12][d[10] : d[10] + d[11]]) is not None:
                scan.matched.append(f"{path.name}:{ts}")
    return scan


def test_no_false_positive_on_the_real_captures(pcap_corpus: Path) -> None:
    """No capture of the corpus carries Kalay (its MANIFEST says so): nothing may match."""
    scan = scan_corpus(pcap_corpus)
    print(f"kalay corpus scan: {scan.payloads} UDP payloads looked at, {len(scan.matched)} matched")
    assert scan.payloads > 10_000
    assert scan.matched == []
