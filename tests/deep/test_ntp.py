"""Tests for netwatch.deep.ntp: Zeek's length rules per NTP mode."""

from __future__ import annotations

from netwatch.deep.base import Verdict
from netwatch.deep.ntp import NtpParser, is_ntp
from tests.deep.lanctx import Recorder, udp_flow

CLIENT = bytes((0x23,)) + bytes(47)  # version 4, mode 3


def test_length_rules_by_mode() -> None:
    assert is_ntp(CLIENT)
    assert not is_ntp(CLIENT[:47])
    assert is_ntp(bytes((0x16, 0x02)) + bytes(10))  # mode 6 control, 12 bytes
    assert not is_ntp(bytes((0x17,)) + bytes(6))  # mode 7, 7 bytes
    assert not is_ntp(b"")


def test_parser_names_ntp() -> None:
    flow = udp_flow(b"\x0a\x00\x00\x01", 40000, b"\x0a\x00\x00\x02", 123)
    assert NtpParser().udp(Recorder(), flow, True, CLIENT[:20], 0.0) is None
    assert "service" not in (flow.app or {})
    assert NtpParser().udp(Recorder(), flow, True, CLIENT, 0.0) is Verdict.DONE
    assert flow.app is not None and flow.app["service"] == ["ntp"]
