"""Tests for netwatch.deep.rtsp: requests, responses, SDP media, captures, never-raise checks."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netwatch.deep.http import header, parse_head
from netwatch.deep.rtsp import MAX_MEDIA, RtspMessage, looks_like_rtsp, parse_rtsp
from tests.conftest import corpus_file
from tests.deep.test_dns import Segment, l4_payloads, mutate
from tests.profile import examples

SDP = (
    b"v=0\r\no=- 1 1 IN IP4 10.0.0.5\r\ns=Media Presentation\r\n"
    b"m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
    b"m=audio 0 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n"
    b"m=application 0 RTP/AVP 107\r\n"
)
DESCRIBE_REPLY = (
    b"RTSP/1.0 200 OK\r\nCSeq: 3\r\nServer: Hikvision-Webs\r\n"
    b"Content-Type: application/sdp\r\nContent-Length: %d\r\n\r\n" % len(SDP)
) + SDP


def test_describe_reply_lists_sdp_media() -> None:
    message = parse_rtsp(DESCRIBE_REPLY)
    assert message == RtspMessage(
        is_request=False,
        method=None,
        uri=None,
        status=200,
        server="Hikvision-Webs",
        www_authenticate=None,
        user_agent=None,
        cseq=3,
        transport=None,
        media=("video", "audio", "application"),
    )


def test_media_of_a_cut_body_and_content_length_bound() -> None:
    cut = DESCRIBE_REPLY[: DESCRIBE_REPLY.index(b"m=audio") + 4]  # "m=au": no space yet
    message = parse_rtsp(cut)
    assert message is not None
    assert message.media == ("video",)
    extra = DESCRIBE_REPLY + b"m=data 0 RTP/AVP 1\r\n"  # beyond Content-Length
    assert parse_rtsp(extra) == parse_rtsp(DESCRIBE_REPLY)


def test_sdp_without_content_type_and_media_cap() -> None:
    body = b"v=0\r\n" + b"m=audio 0 RTP/AVP 0\r\n" * 40
    message = parse_rtsp(b"ANNOUNCE rtsp://cam/x RTSP/1.0\r\nCSeq: 9\r\n\r\n" + body)
    assert message is not None
    assert (message.is_request, message.method, message.cseq) == (True, "ANNOUNCE", 9)
    assert message.media == ("audio",) * MAX_MEDIA
    plain = parse_rtsp(b"RTSP/1.0 200 OK\r\nCSeq: 9\r\nContent-Type: text/plain\r\n\r\nm=audio x")
    assert plain is not None
    assert plain.media == ()


def test_request_fields_and_odd_cseq() -> None:
    message = parse_rtsp(
        b"SETUP rtsp://10.0.0.5:554/Streaming/Channels/101/trackID=1 RTSP/1.0\r\n"
        b"CSeq: 4x\r\nUser-Agent: LibVLC/3.0.16\r\nTransport: RTP/AVP;unicast;client_port=5000-5001"
        b"\r\n\r\n"
    )
    assert message is not None
    assert message.uri == "rtsp://10.0.0.5:554/Streaming/Channels/101/trackID=1"
    assert (message.cseq, message.user_agent) == (4, "LibVLC/3.0.16")
    assert message.transport == "RTP/AVP;unicast;client_port=5000-5001"
    no_cseq = parse_rtsp(b"OPTIONS * RTSP/1.0\r\nCSeq: none\r\n\r\n")
    assert no_cseq is not None
    assert no_cseq.cseq is None


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n\r\n",
        b"$\x00\x01\x00" + bytes(256),  # interleaved RTP
        b"describe rtsp://x RTSP/1.0\r\n\r\n",
        b"RTSP/1.0 OK\r\n\r\n",
        b"v=0\r\nm=video 0 RTP/AVP 96\r\n",  # an SDP body on its own
    ],
)
def test_not_rtsp_is_none(data: bytes) -> None:
    assert parse_rtsp(data) is None


def test_looks_like_rtsp() -> None:
    assert looks_like_rtsp(b"RTSP/1.0 200 OK\r\n")
    assert looks_like_rtsp(b"DESCRIBE rtsp://cam/ RTSP/1.0\r\n")
    assert looks_like_rtsp(b"GET_PARAMETER rtsp://cam/ RTSP/1.0\r\n")
    assert not looks_like_rtsp(b"GET / HTTP/1.1\r\n")
    assert not looks_like_rtsp(b"$\x00\x00\x10")


# ---- real captures -----------------------------------------------------------------------


def _server_streams(segments: list[Segment]) -> dict[int, list[bytes]]:
    """Server->client payloads per client port, with the capture's duplicate copies removed."""
    streams: dict[int, list[bytes]] = {}
    for seg in segments:
        if seg.sport == 8554 and seg.payload not in streams.setdefault(seg.dport, []):
            streams[seg.dport].append(seg.payload)
    return streams


def test_sll_pcapng_capture_requests_responses_and_sdp() -> None:
    segments = list(l4_payloads(corpus_file("pcaps", "protocols", "ndpi_rtsp.pcap")))
    requests = [parse_rtsp(s.payload) for s in segments if s.dport == 8554]
    assert all(r is not None and r.is_request for r in requests)
    methods = {r.method for r in requests if r is not None}
    assert {"OPTIONS", "DESCRIBE", "SETUP", "PLAY", "GET_PARAMETER"} <= methods
    media_seen: list[tuple[str, ...]] = []
    for stream in _server_streams(segments).values():
        for head, body in itertools.pairwise(stream):
            if body.startswith(b"v=0"):
                reply = parse_rtsp(head + body)
                assert reply is not None
                assert (reply.status, reply.server, reply.cseq) == (200, "VLC/3.0.12", 3)
                media_seen.append(reply.media)
    assert ("video", "audio") in media_seen
    assert ("audio", "video") in media_seen


def test_single_setup_capture() -> None:
    (segment,) = l4_payloads(corpus_file("pcaps", "protocols", "ndpi_rtsp_setup_http.pcapng"))
    assert looks_like_rtsp(segment.payload)
    message = parse_rtsp(segment.payload)
    assert message is not None
    assert (message.method, message.uri, message.cseq) == (
        "SETUP",
        "rtsp://172.28.4.26:8554/trackID=88",
        4,
    )
    assert message.transport == "RTP/AVP;unicast;client_port=50220-50221"
    assert message.user_agent is not None
    assert message.user_agent.startswith("LibVLC/3.0.16")


# ---- properties --------------------------------------------------------------------------


@settings(max_examples=examples(2000), deadline=None)
@given(
    st.binary(max_size=400),
    st.sampled_from([b"", b"RTSP/1.0 200 OK\r\n", b"PLAY x RTSP/1.0\r\n"]),
)
def test_random_bytes_never_raise(data: bytes, prefix: bytes) -> None:
    message = parse_rtsp(prefix + data)
    assert message is None or isinstance(message, RtspMessage)
    assert isinstance(looks_like_rtsp(prefix + data), bool)


@settings(max_examples=examples(2000), deadline=None)
@given(st.binary(max_size=10))
def test_truncated_or_bit_flipped_messages_never_raise(noise: bytes) -> None:
    message = parse_rtsp(mutate(DESCRIBE_REPLY, noise))
    assert message is None or len(message.media) <= MAX_MEDIA


_FIELDS = ("server", "www-authenticate", "user-agent", "cseq", "transport", "content-type")


@settings(max_examples=examples(1500), deadline=None)
@given(
    st.sampled_from([b"RTSP/1.0 200 OK", b"DESCRIBE rtsp://cam/ RTSP/1.0"]),
    st.lists(
        st.tuples(
            st.sampled_from([*_FIELDS, "content-length", "x-other"]).map(
                lambda name: name.upper() if len(name) % 2 else name.title()
            ),
            st.sampled_from(["", "a", " b ", "12", "7x", "application/SDP", "text/plain"]),
        ),
        max_size=8,
    ),
    st.sampled_from([b"", b"v=0\r\nm=audio 0 RTP/AVP 8\r\n", b"m=video 0 RTP/AVP 96\r\n"]),
)
def test_each_field_is_the_first_value_of_its_header(
    start: bytes, fields: list[tuple[str, str]], body: bytes
) -> None:
    """Repeated headers, in any case, with and without a body: every field is what
    ``http.header`` (the first value) gives, and the media what the Content-Type, the
    first Content-Length and the body's ``v=0`` say."""
    data = start + b"".join(f"\r\n{name}: {value}".encode() for name, value in fields)
    data += b"\r\n\r\n" + body
    message = parse_rtsp(data)
    head = parse_head(data)
    assert message is not None and head is not None
    first = {name: header(head.headers, name) for name in (*_FIELDS, "content-length")}
    assert (
        message.server,
        message.www_authenticate,
        message.user_agent,
        message.transport,
    ) == (first["server"], first["www-authenticate"], first["user-agent"], first["transport"])
    cseq = re.match(r"\d{1,10}", first["cseq"] or "")
    assert message.cseq == (int(cseq.group()) if cseq else None)
    sdp = "application/sdp" in (first["content-type"] or "").lower() or body.startswith(b"v=0")
    length = re.match(r"\d{1,10}", first["content-length"] or "")
    cut = body[: int(length.group())] if length else body
    want = tuple(
        line.split(b" ")[0][2:].decode().lower()
        for line in cut.split(b"\r\n")
        if line.startswith(b"m=") and b" " in line
    )
    assert message.media == (want if sdp and body else ())
