"""Tests for netwatch.deep.starttls: Zeek's service names for FTP/SMTP/IMAP and the switch to
TLS of the in-band upgrading protocols, replayed through the flow table and the inspector."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netwatch.deep.base import Verdict
from netwatch.deep.starttls import PG_SSL_REQUEST, StarttlsParser, ftp_data_channel
from netwatch.flow.table import PROTO_TCP, Flow
from netwatch.testing import pcapgen as g
from netwatch.testing.zeekconn import replay_trace
from tests.conftest import corpus_file
from tests.deep.lanctx import Recorder
from tests.flow.test_inspect import NVR, run
from tests.profile import examples

HELLO = g.tls_client_hello("mail.example.com", client_random=bytes(32))
SERVER_HELLO = b"\x16\x03\x03\x00\x04\x02\x00\x00\x00"


def session(port: int, *exchange: tuple[bool, bytes]) -> Flow:
    """One TCP connection to ``port`` carrying ``exchange`` ((is_orig, payload), ...)."""
    s = g.TcpSession(NVR, 40100, port)
    frames = [*s.handshake()]
    for is_orig, payload in exchange:
        frames += s.send(is_orig, payload)
    flows, _ = run(frames)
    return next(f for f in flows if f.proto == PROTO_TCP and f.resp_p == port)


def services(flow: Flow) -> list[str]:
    return list((flow.app or {}).get("service", []))


def test_ftp_auth_tls() -> None:
    flow = session(
        21,
        (False, b"220 ready\r\n"),
        (True, b"AUTH TLS\r\n"),
        (False, b"234 go ahead\r\n"),
        (True, HELLO),
        (False, SERVER_HELLO),
    )
    assert services(flow) == ["ftp", "ssl"]
    assert flow.app is not None and flow.app["sni"] == "mail.example.com"


def test_smtp_starttls() -> None:
    flow = session(
        25,
        (False, b"220 mx ESMTP\r\n"),
        (True, b"EHLO cam\r\n"),
        (False, b"250-mx\r\n250 STARTTLS\r\n"),
        (True, b"STARTTLS\r\n"),
        (False, b"220 ready\r\n"),
        (True, HELLO),
    )
    assert services(flow) == ["smtp", "ssl"]


def test_starttls_refused_keeps_plain_text() -> None:
    flow = session(
        25,
        (False, b"220 mx ESMTP\r\n"),
        (True, b"STARTTLS\r\n"),
        (False, b"454 TLS not available\r\n"),
        (True, HELLO),
    )
    assert services(flow) == ["smtp"]


def test_smtp_on_another_port_needs_greeting_and_ehlo() -> None:
    assert services(session(2525, (False, b"220 mx\r\n"), (True, b"EHLO cam\r\n"))) == ["smtp"]
    assert services(session(2525, (False, b"220 mx\r\n"), (True, b"HI there\r\n"))) == []


def test_pop3_imap_and_irc_upgrades_add_ssl_only_where_zeek_names_nothing_else() -> None:
    pop3 = session(
        110, (False, b"+OK\r\n"), (True, b"STLS\r\n"), (False, b"+OK\r\n"), (True, HELLO)
    )
    assert services(pop3) == ["ssl"]
    imap = session(
        143,
        (False, b"* OK IMAP ready\r\n"),
        (True, b"a1 STARTTLS\r\n"),
        (False, b"a1 OK go\r\n"),
        (True, HELLO),
    )
    assert services(imap) == ["imap", "ssl"]
    irc = session(
        6667, (True, b"STARTTLS\r\n"), (False, b":irc.example 670 cam :go\r\n"), (True, HELLO)
    )
    assert services(irc) == ["ssl"]


def test_postgresql_and_mysql_ssl_requests() -> None:
    pg = session(15432, (True, PG_SSL_REQUEST), (False, b"S"), (True, HELLO))
    assert services(pg) == ["ssl"]
    ssl_request = (32).to_bytes(3, "little") + b"\x01" + b"\x00\x08" + bytes(30)
    mysql = session(3306, (False, b"J\x00\x00\x00\x0a8.0"), (True, ssl_request), (True, HELLO))
    assert services(mysql) == ["ssl"]


def test_ftp_reply_without_space_withdraws_ftp() -> None:
    flow = session(
        21,
        (False, b"220 ready\r\n"),
        (True, b"USER cam\r\n"),
        (False, b"230_no_space\r\n"),
        (True, b"PASS x\r\n"),
    )
    assert services(flow) == []


def test_a_server_port_claimed_by_the_client_side_only_is_left_to_the_magic() -> None:
    """Zeek attaches analyzers by the responder's port: a client on port 6669 talking HTTP
    to port 80 is HTTP, not IRC."""
    s = g.TcpSession(NVR, 6669, 80)
    get = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    (flow,), _ = run([*s.handshake(), *s.send(True, get)])
    assert services(flow) == ["http"]


def test_ftp_data_channels_are_announced() -> None:
    server = bytes((192, 0, 2, 7))
    assert ftp_data_channel("227 Entering Passive Mode (192,0,2,7,4,1)", False, b"") == (
        server,
        1025,
    )
    assert ftp_data_channel("PORT 10,0,0,1,0,20", True, b"") == (bytes((10, 0, 0, 1)), 20)
    assert ftp_data_channel("229 Entering Extended Passive Mode (|||6446|)", False, server) == (
        server,
        6446,
    )
    assert ftp_data_channel("EPRT |1|10.0.0.2|6275|", True, b"") == (bytes((10, 0, 0, 2)), 6275)
    assert ftp_data_channel("227 Passive (300,0,2,7,4,1)", False, b"") is None
    assert ftp_data_channel("EPRT |2|zz::1|6275|", True, b"") is None


def test_gridftp_adat_carries_the_client_hello() -> None:
    adat = b"ADAT " + base64.b64encode(HELLO) + b"\r\n"
    flow = session(
        2811,
        (False, b"220 GridFTP ready\r\n"),
        (True, b"AUTH GSSAPI\r\n"),
        (False, b"334 ADAT= go\r\n"),
        (True, adat),
    )
    assert services(flow) == ["ftp", "ssl"]


@pytest.mark.corpus
def test_zeek_ftp_data_channels() -> None:
    """Zeek's ftp/ipv4.pcap: one control connection, four ``ftp-data`` connections."""
    records = replay_trace(corpus_file("zeek", "traces", "ftp", "ipv4.pcap"))
    assert sorted(str(r["service"]) for r in records) == ["ftp", *["ftp-data"] * 4]


@settings(max_examples=examples(500), deadline=None)
@given(st.binary(max_size=120), st.booleans(), st.sampled_from([21, 25, 110, 143, 3306, 5432]))
def test_hostile_bytes_never_raise(data: bytes, is_orig: bool, port: int) -> None:
    flow = Flow((b"a", b"b", PROTO_TCP, 1, port), "C1", 0.0, PROTO_TCP)
    flow.orig_p, flow.resp_p = 40000, port
    parser, ctx = StarttlsParser(), Recorder()
    for chunk in (data, b"234 x\r\n", data):
        verdict = parser.tcp(ctx, flow, is_orig, chunk, 0.0)
        assert verdict in (Verdict.MORE, Verdict.DONE)


def test_implicit_tls_on_a_starttls_port_is_tls() -> None:
    assert services(session(587, (True, HELLO), (False, SERVER_HELLO))) == ["ssl"]


def test_smtp_reply_out_of_range_withdraws_smtp() -> None:
    flow = session(25, (False, b"220 mx\r\n"), (True, b"EHLO cam\r\n"), (False, b"hello?\r\n"))
    assert services(flow) == []
