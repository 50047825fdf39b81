"""Tests for netwatch.deep.netbios: NetBIOS name service logged as dns, the name decoded."""

from __future__ import annotations

import struct

from netwatch.deep.base import Verdict
from netwatch.deep.netbios import NetbiosParser, decode_netbios_name
from tests.conftest import corpus_file
from tests.deep.lanctx import Recorder, udp_flow
from tests.deep.test_dns import l4_payloads


def encode(name: str, suffix: int = 0x00) -> bytes:
    raw = name.upper().ljust(15).encode() + bytes((suffix,))
    return b"".join(bytes((65 + (b >> 4), 65 + (b & 0x0F))) for b in raw)


def query(name: str) -> bytes:
    header = struct.pack(">HHHHHH", 0x1234, 0x0110, 1, 0, 0, 0)
    return header + b"\x20" + encode(name) + b"\x00" + struct.pack(">HH", 0x20, 1)


def test_decode_first_level_encoding() -> None:
    assert decode_netbios_name(encode("ipcam-01").decode()) == "IPCAM-01"
    assert decode_netbios_name("eogfglgpcacacacacacacacacacacaaa") == "Neko"
    assert decode_netbios_name("example.com") is None
    assert decode_netbios_name("Z" * 32) is None


def test_query_is_dns_with_its_name() -> None:
    flow = udp_flow(b"\x0a\x00\x00\x01", 137, b"\x0a\x00\x00\xff", 137)
    assert NetbiosParser().udp(Recorder(), flow, True, query("nvr"), 0.0) is Verdict.DONE
    assert flow.app is not None
    assert (flow.app["service"], flow.app["dns_query"]) == (["dns"], "NVR")


def test_not_a_message() -> None:
    flow = udp_flow(b"\x0a\x00\x00\x01", 137, b"\x0a\x00\x00\xff", 137)
    assert NetbiosParser().udp(Recorder(), flow, True, b"\x00\x01", 0.0) is None
    assert flow.app is None


def test_zeek_wikipedia_netbios_broadcasts() -> None:
    ctx = Recorder()
    names = set()
    for seg in l4_payloads(corpus_file("zeek", "traces", "wikipedia.pcap")):
        if seg.dport == 137:
            flow = udp_flow(b"a", seg.sport, b"b", 137)
            NetbiosParser().udp(ctx, flow, True, seg.payload, 0.0)
            assert flow.app is not None and flow.app["service"] == ["dns"]
            names.add(flow.app.get("dns_query"))
    assert names and None not in names
