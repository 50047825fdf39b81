"""Tests for netwatch.deep.stun: RFC 8489 messages named ``stun``."""

from __future__ import annotations

from netwatch.deep.base import Verdict
from netwatch.deep.stun import MAGIC_COOKIE, StunParser, is_stun
from tests.deep.lanctx import Recorder, udp_flow

BINDING_REQUEST = b"\x00\x01\x00\x00" + MAGIC_COOKIE + bytes(12)
BINDING_RESPONSE = b"\x01\x01\x00\x0c" + MAGIC_COOKIE + bytes(12) + b"\x00\x20\x00\x08" + bytes(8)


def test_header_rules() -> None:
    assert is_stun(BINDING_REQUEST)
    assert is_stun(BINDING_RESPONSE)
    assert not is_stun(BINDING_RESPONSE[:-4])  # length disagrees
    assert not is_stun(b"\x00\x01\x00\x00" + b"\x00" * 16)  # no cookie (RFC 3489)
    assert not is_stun(b"\x80" + BINDING_REQUEST[1:])  # RTP-like first bits


def test_parser_names_stun() -> None:
    flow = udp_flow(b"\x0a\x00\x00\x01", 40000, b"\x0a\x00\x00\x02", 3478)
    assert StunParser().udp(Recorder(), flow, True, b"\x00" * 30, 0.0) is None
    assert StunParser().udp(Recorder(), flow, True, BINDING_REQUEST, 0.0) is Verdict.DONE
    assert flow.app is not None and flow.app["service"] == ["stun"]
