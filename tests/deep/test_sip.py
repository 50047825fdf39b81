"""Tests for netwatch.deep.sip: request and status lines name ``sip``."""

from __future__ import annotations

from netwatch.deep.base import Verdict
from netwatch.deep.sip import SipParser, is_sip
from tests.deep.lanctx import Recorder, udp_flow


def test_request_and_status_lines() -> None:
    assert is_sip(b"INVITE sip:door@10.0.0.5 SIP/2.0\r\nVia: x\r\n")
    assert is_sip(b"SIP/2.0 180 Ringing\r\n")
    assert not is_sip(b"GET / HTTP/1.1\r\n")
    assert not is_sip(b"SIP/2.0 999 x\r\n")
    assert not is_sip(b"invite sip:x SIP/2.0\r\n")


def test_parser_names_sip() -> None:
    flow = udp_flow(b"\x0a\x00\x00\x01", 5060, b"\x0a\x00\x00\x02", 5060)
    assert SipParser().udp(Recorder(), flow, True, b"\x00" * 20, 0.0) is None
    assert SipParser().udp(Recorder(), flow, True, b"SIP/2.0 200 OK\r\n", 0.0) is Verdict.DONE
    assert flow.app is not None and flow.app["service"] == ["sip"]
