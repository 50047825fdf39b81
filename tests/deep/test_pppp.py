"""Tests for the CS2 Network PPPP parser: header and length checks, bodies, flow results."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netwatch.deep.discovery.identity import DeviceIdentity
from netwatch.deep.pppp import (
    MESSAGES,
    MIN_CUT_BYTES,
    PLATFORM,
    Kind,
    PpppParser,
    device_id_of,
    parse_pppp,
    pppp_of,
)
from netwatch.flow.table import PROTO_UDP, Flow
from tests.profile import examples

CAMERA = bytes([192, 168, 1, 161])
SERVER = bytes([198, 51, 100, 7])
UID = b"ABCD\0\0\0\0" + (123456).to_bytes(4, "big") + b"XYZUV\0\0\0"  # made-up device ID


def msg(code: int, body: bytes = b"") -> bytes:
    """A PPPP datagram: magic, type, big-endian body length, body."""
    return bytes([0xF1, code]) + len(body).to_bytes(2, "big") + body


def sockaddr(ip: tuple[int, int, int, int], port: int) -> bytes:
    """The PPPP IPv4 sockaddr: family 00 02, byte-reversed port and address, 8 zero bytes."""
    return b"\x00\x02" + port.to_bytes(2, "little") + bytes(reversed(ip)) + bytes(8)


def test_hello_and_lan_search_are_empty_messages() -> None:
    hello = parse_pppp(msg(0x00))
    assert hello is not None and hello.name == "HELLO" and hello.type.kind is Kind.REGISTER
    search = parse_pppp(msg(0x30))
    assert search is not None and search.name == "LAN_SEARCH" and search.type.kind is Kind.LAN


def test_hello_ack_gives_the_public_address() -> None:
    ack = parse_pppp(msg(0x01, sockaddr((203, 0, 113, 9), 11370)))
    assert ack is not None and ack.name == "HELLO_ACK"
    assert ack.address == "203.0.113.9:11370"


def test_punch_and_ready_carry_the_device_id() -> None:
    for code, name in ((0x41, "PUNCH_PKT"), (0x42, "P2P_RDY"), (0x10, "DEV_LGN")):
        found = parse_pppp(msg(code, UID + bytes(4)))
        assert found is not None and found.name == name
        assert found.device_id == "ABCD-123456-XYZUV"


def test_drw_needs_its_body_magic() -> None:
    drw = parse_pppp(msg(0xD0, b"\xd1\x02\x00\x07" + bytes(20)))
    assert drw is not None and drw.name == "DRW" and drw.type.kind is Kind.SESSION
    assert parse_pppp(msg(0xD0, b"\x00\x02\x00\x07" + bytes(20))) is None


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xf1\x00\x00",  # shorter than the header
        b"\xf2\x00\x00\x00",  # wrong magic
        b"\xf1\x05\x00\x00",  # unknown type
        msg(0x00) + b"\x00",  # a byte more than the length says
        b"\xf1\x30\x00\x04",  # a short datagram missing its body (not a snaplen cut)
        msg(0x41, b"abcd\0\0\0\0" + bytes(12)),  # a lowercase prefix is no device ID
        msg(0x41, b"ABCD\0\0\0\0" + bytes(4) + b"\0" * 8),  # no check code
        msg(0x41, UID[:12]),  # a device ID cut short
        msg(0x01, b"\x00\x09" + bytes(14)),  # a sockaddr of another family
    ],
)
def test_not_pppp(data: bytes) -> None:
    assert parse_pppp(data) is None


def test_a_snaplen_cut_is_accepted_when_the_body_still_checks_out() -> None:
    full = msg(0xD0, b"\xd1\x01\x00\x01" + bytes(1000))
    assert parse_pppp(full[:MIN_CUT_BYTES]) is not None
    assert parse_pppp(full[: MIN_CUT_BYTES - 1]) is None  # too little kept to trust it


def test_device_id_format() -> None:
    assert device_id_of(UID) == "ABCD-123456-XYZUV"
    assert device_id_of(b"A1\0\0\0\0\0\0" + bytes(4) + b"B\0\0\0\0\0\0\0") == "A1-000000-B"
    assert device_id_of(b"1ABC\0\0\0\0" + bytes(4) + b"XYZUV\0\0\0") is None  # digit first
    assert device_id_of(b"AB\0C\0\0\0\0" + bytes(4) + b"XYZUV\0\0\0") is None  # NUL inside


def test_every_listed_type_parses_with_a_plausible_body() -> None:
    body = UID + bytes(40)
    for code, mtype in MESSAGES.items():
        payload = sockaddr((1, 2, 3, 4), 5) + body if mtype.sockaddr else body
        if code in (0xD0, 0xD1, 0xD8):
            payload = b"\xd1" + payload
        found = parse_pppp(msg(code, payload))
        assert found is not None and found.code == code, hex(code)


@settings(max_examples=examples(3000), deadline=None)
@given(st.binary(max_size=96))
def test_never_raises(data: bytes) -> None:
    found = parse_pppp(data)
    assert found is None or data[0] == 0xF1


@settings(max_examples=examples(1000), deadline=None)
@given(st.integers(0, 255).filter(lambda b: b != 0xF1), st.binary(max_size=64))
def test_rejects_other_first_bytes(first: int, rest: bytes) -> None:
    assert parse_pppp(bytes([first]) + rest) is None


@settings(max_examples=examples(1000), deadline=None)
@given(st.sampled_from(sorted(MESSAGES)), st.binary(max_size=40), st.integers(1, 40))
def test_a_wrong_length_field_is_rejected(code: int, body: bytes, extra: int) -> None:
    data = msg(code, body)
    declared = len(body) + extra  # the header says more than the datagram holds
    lying = data[:2] + declared.to_bytes(2, "big") + data[4:]
    assert parse_pppp(lying) is None  # short datagrams (< MIN_CUT_BYTES) are never cuts


# ---------------------------------------------------------------- the registered parser


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


def _flow() -> Flow:
    flow = Flow(("k",), "C1", 0.0, PROTO_UDP)
    flow.orig_h, flow.resp_h, flow.orig_p, flow.resp_p = CAMERA, SERVER, 22855, 32100
    return flow


def test_the_parser_records_messages_per_direction() -> None:
    parser, ctx, flow = PpppParser(), FakeContext(), _flow()
    parser.udp(ctx, flow, True, msg(0x00), 0.0)  # type: ignore[arg-type]
    parser.udp(ctx, flow, False, msg(0x01, sockaddr((203, 0, 113, 9), 22855)), 0.1)  # type: ignore[arg-type]
    parser.udp(ctx, flow, True, msg(0x42, UID + bytes(4)), 0.2)  # type: ignore[arg-type]
    info = pppp_of(flow.app)
    assert info is not None and flow.app is not None
    assert flow.app["p2p"] == PLATFORM and flow.app["service"] == ["pppp"]
    assert info.sent(True) == (["HELLO", "P2P_RDY"], {Kind.REGISTER, Kind.TRAVERSAL})
    assert info.sent(False) == (["HELLO_ACK"], {Kind.REGISTER})
    assert info.public_addr == "203.0.113.9:22855"
    assert info.device_id == "ABCD-123456-XYZUV"
    assert ctx.cameras == [(CAMERA, None, "pppp:P2P_RDY")]  # the device announced itself
    assert ctx.counts == {"pppp": 3}


def test_the_parser_ignores_other_payloads() -> None:
    parser, ctx, flow = PpppParser(), FakeContext(), _flow()
    parser.udp(ctx, flow, True, b"\x80\x00" + bytes(30), 0.0)  # type: ignore[arg-type]
    parser.udp(ctx, flow, True, b"\xf1\x05\x00\x00", 0.0)  # type: ignore[arg-type]
    assert flow.app is None and ctx.counts == {"pppp_unparsed": 1}
