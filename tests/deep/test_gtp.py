"""Tests for netwatch.deep.gtp: gtpv1 only for a G-PDU that carries an IP packet."""

from __future__ import annotations

from netwatch.deep.base import Verdict
from netwatch.deep.gtp import GtpParser, is_gtp_user_data
from tests.conftest import corpus_file
from tests.deep.lanctx import Recorder, udp_flow
from tests.deep.test_dns import l4_payloads

INNER = b"\x45" + bytes(19)


def gtp(msg_type: int, payload: bytes, flags: int = 0x30, optional: bytes = b"") -> bytes:
    body = optional + payload
    return bytes((flags, msg_type)) + len(body).to_bytes(2, "big") + b"\x00\x00\x00\x01" + body


def test_g_pdu_with_ip() -> None:
    assert is_gtp_user_data(gtp(0xFF, INNER))
    assert is_gtp_user_data(gtp(0xFF, INNER, flags=0x32, optional=b"\x00\x01\x00\x00"))
    ext = b"\x00\x01\x00\x85" + b"\x01\x00\x00\x00"  # one PDU-session extension, then none
    assert is_gtp_user_data(gtp(0xFF, INNER, flags=0x34, optional=ext))


def test_not_user_data() -> None:
    assert not is_gtp_user_data(gtp(0x01, bytes(4)))  # echo request
    assert not is_gtp_user_data(gtp(0xFF, b"\x00" * 20))  # no IP inside
    assert not is_gtp_user_data(gtp(0xFF, INNER)[:-1])  # length field disagrees
    assert not is_gtp_user_data(gtp(0xFF, INNER, flags=0x50))  # GTPv2


def test_parser_names_gtpv1() -> None:
    flow = udp_flow(b"\x0a\x00\x00\x01", 2152, b"\x0a\x00\x00\x02", 2152)
    assert GtpParser().udp(Recorder(), flow, True, gtp(0x01, bytes(4)), 0.0) is None
    assert GtpParser().udp(Recorder(), flow, True, gtp(0xFF, INNER), 0.0) is Verdict.DONE
    assert flow.app is not None and flow.app["service"] == ["gtpv1"]


def test_zeek_gtp_traces() -> None:
    """Zeek logs gtpv1 for the user-plane capture, nothing for the one without G-PDUs."""
    user = corpus_file("zeek", "traces", "tunnels", "gtp", "gtp2_different_udp_port.pcap")
    other = corpus_file("zeek", "traces", "tunnels", "gtp", "gtp10_not_0xff.pcap")
    assert any(is_gtp_user_data(s.payload) for s in l4_payloads(user) if 2152 in (s.sport, s.dport))
    assert not any(is_gtp_user_data(s.payload) for s in l4_payloads(other))
