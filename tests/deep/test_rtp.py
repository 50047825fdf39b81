"""Tests for RTP audio recognition."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from netwatch.deep.base import Verdict
from netwatch.deep.rtp import RtpParser, is_rtcp, rtp_audio_codec
from netwatch.testing import pcapgen as g
from tests.deep.lanctx import Recorder, udp_flow
from tests.profile import examples


def test_static_audio_payload_types() -> None:
    assert rtp_audio_codec(g.rtp(1, 160, 7, bytes(160), payload_type=0)) == "PCMU"
    assert rtp_audio_codec(g.rtp(1, 160, 7, bytes(160), payload_type=8, marker=True)) == "PCMA"


def test_video_and_dynamic_types_are_not_audio() -> None:
    assert rtp_audio_codec(g.rtp(1, 1, 7, bytes(1200), payload_type=96)) is None
    assert rtp_audio_codec(g.rtp(1, 1, 7, bytes(1200), payload_type=26)) is None


def test_not_rtp() -> None:
    assert rtp_audio_codec(b"\x00\x00" + bytes(40)) is None  # version 0
    assert rtp_audio_codec(b"\x80\x00" + bytes(9)) is None  # too short
    assert rtp_audio_codec(b"\x8f\x00" + bytes(40)) is None  # 15 CSRCs do not fit


@settings(max_examples=examples(2000), deadline=None)
@given(st.binary(max_size=64))
def test_never_raises(data: bytes) -> None:
    codec = rtp_audio_codec(data)
    assert codec is None or isinstance(codec, str)


def test_two_packets_of_one_stream_name_rtp() -> None:
    parser, ctx = RtpParser(), Recorder()
    flow = udp_flow(b"\x0a\x00\x00\x01", 6970, b"\x0a\x00\x00\x02", 5000)
    first = g.rtp(100, 9000, 7, bytes(1000), payload_type=96)
    assert parser.udp(ctx, flow, True, first, 0.0) is Verdict.MORE
    assert parser.udp(ctx, flow, True, g.rtp(101, 9090, 7, bytes(1000), payload_type=96), 0.0)
    assert flow.app is not None and flow.app["service"] == ["rtp"]
    other = udp_flow(b"\x0a\x00\x00\x01", 6970, b"\x0a\x00\x00\x02", 5002)
    parser.udp(ctx, other, True, first, 0.0)
    parser.udp(ctx, other, True, g.rtp(5000, 1, 8, bytes(1000), payload_type=96), 0.0)
    assert "service" not in (other.app or {})  # another SSRC, the sequence far away


def test_rtcp_compound_packet() -> None:
    receiver_report = b"\x80\xc9\x00\x01" + bytes(4)
    sdes = b"\x81\xca\x00\x02" + bytes(8)
    assert is_rtcp(receiver_report + sdes)
    assert not is_rtcp(receiver_report + sdes[:-1])
    assert not is_rtcp(b"\x80\x60\x00\x01" + bytes(4))  # RTP, not RTCP
