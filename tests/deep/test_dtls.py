"""Tests for netwatch.deep.dtls: Zeek's DTLS ClientHello test."""

from __future__ import annotations

from netwatch.deep.base import Verdict
from netwatch.deep.dtls import DtlsParser, is_dtls_client_hello
from tests.deep.lanctx import Recorder, udp_flow

HELLO_BODY = b"\xfe\xfd" + bytes(32) + b"\x00\x00\x00\x02\xc0\x2b\x01\x00"
HANDSHAKE = b"\x01" + len(HELLO_BODY).to_bytes(3, "big") + b"\x00\x00" + bytes(3)
HANDSHAKE += len(HELLO_BODY).to_bytes(3, "big") + HELLO_BODY
CLIENT_HELLO = b"\x16\xfe\xff" + bytes(8) + len(HANDSHAKE).to_bytes(2, "big") + HANDSHAKE


def test_client_hello() -> None:
    assert is_dtls_client_hello(CLIENT_HELLO)
    assert not is_dtls_client_hello(b"\x16\x03\x01" + CLIENT_HELLO[3:])  # TLS, not DTLS
    assert not is_dtls_client_hello(CLIENT_HELLO[:3] + b"\x00\x01" + CLIENT_HELLO[5:])  # epoch 1
    assert not is_dtls_client_hello(CLIENT_HELLO[:13] + b"\x02" + CLIENT_HELLO[14:])


def test_parser_names_dtls() -> None:
    flow = udp_flow(b"\x0a\x00\x00\x01", 40000, b"\x0a\x00\x00\x02", 50000)
    assert DtlsParser().udp(Recorder(), flow, True, CLIENT_HELLO, 0.0) is Verdict.DONE
    assert flow.app is not None and flow.app["service"] == ["dtls"]
