"""Tests for RTP audio recognition."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from netwatch.deep.rtp import rtp_audio_codec
from netwatch.testing import pcapgen as g
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
