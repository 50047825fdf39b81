"""Tests for netwatch.deep.ssh: NEWKEYS confirms ssh once both version lines are known."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from netwatch.deep.ssh import MSG_NEWKEYS, SshParser, newkeys_seen, version_end
from netwatch.flow.table import PROTO_TCP, Flow
from netwatch.testing import pcapgen as g
from netwatch.testing.zeekconn import replay_trace
from tests.conftest import corpus_file
from tests.deep.lanctx import Recorder
from tests.flow.test_inspect import NVR, run
from tests.profile import examples


def packet(msg_type: int, body: bytes = b"") -> bytes:
    """An unencrypted SSH binary packet (RFC 4253 section 6), 4 bytes of padding."""
    payload = bytes((msg_type,)) + body
    return (len(payload) + 5).to_bytes(4, "big") + b"\x04" + payload + bytes(4)


KEXINIT = packet(20, bytes(200))
NEWKEYS = packet(MSG_NEWKEYS)


def test_version_line_and_pre_banner() -> None:
    assert version_end(b"SSH-2.0-OpenSSH_9.6\r\nrest", True) == 21
    assert version_end(b"SSH-2.0-Open", True) is None
    assert version_end(b"SS", True) is None
    assert version_end(b"GET / HTTP/1.1\r\n", True) == -1
    assert version_end(b"hello there\r\nSSH-2.0-x\r\n", False) == 24
    assert version_end(b"hello there\r\n", False) is None


def test_packets_until_newkeys() -> None:
    assert newkeys_seen(KEXINIT + NEWKEYS, 0) is True
    assert newkeys_seen(KEXINIT, 0) is None
    assert newkeys_seen(b"\xff\xff\xff\xff\x04\x14", 0) is False


def test_both_sides_then_newkeys_confirm_ssh() -> None:
    s = g.TcpSession(NVR, 40200, 22)
    frames = [
        *s.handshake(),
        *s.send(False, b"SSH-2.0-OpenSSH_9.6\r\n"),
        *s.send(True, b"SSH-2.0-cam\r\n"),
        *s.send(False, KEXINIT),
        *s.send(True, KEXINIT),
        *s.send(False, NEWKEYS),
    ]
    (flow,), _ = run(frames)
    assert flow.app is not None and flow.app["service"] == ["ssh"]


def test_one_side_only_is_not_confirmed() -> None:
    """Zeek's half-duplex-server baseline: the server's side alone logs no service."""
    s = g.TcpSession(NVR, 40201, 22)
    frames = [*s.handshake(), *s.send(False, b"SSH-2.0-x\r\n" + KEXINIT + NEWKEYS)]
    (flow,), _ = run(frames)
    assert "service" not in (flow.app or {})


def test_http_on_port_22_is_left_to_http() -> None:
    s = g.TcpSession(NVR, 40202, 22)
    frames = [
        *s.handshake(),
        *s.send(True, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
        *s.send(False, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
    ]
    (flow,), _ = run(frames)
    assert flow.app is not None and flow.app["service"] == ["http"]


def test_zeek_pre_banner_trace() -> None:
    records = replay_trace(corpus_file("zeek", "traces", "ssh", "server-pre-banner-data.pcap"))
    assert [r["service"] for r in records] == ["ssh"]


@settings(max_examples=examples(500), deadline=None)
@given(st.binary(max_size=200), st.booleans())
def test_hostile_bytes_never_raise(data: bytes, is_orig: bool) -> None:
    flow = Flow((b"a", b"b", PROTO_TCP, 1, 22), "C1", 0.0, PROTO_TCP)
    for buf in (data, b"SSH-2.0-x\r\n" + data):
        SshParser().tcp(Recorder(), flow, is_orig, buf, 0.0)
