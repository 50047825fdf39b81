"""Tests for netwatch.deep.dns: real captures, hand-built messages, and never-raise properties.

Also holds ``l4_payloads``, the small dpkt-based pcap reader the other deep-parser tests use.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import dpkt
from hypothesis import given, settings
from hypothesis import strategies as st

from netwatch.deep.dns import (
    MAX_ANSWERS,
    ZEEK_MAX_QUERIES,
    DnsMessage,
    DnsParser,
    DnsRecord,
    normalize_name,
    parse_dns,
    parse_dns_tcp,
    resolve_chain,
)
from tests.conftest import corpus_file
from tests.deep.lanctx import Recorder, udp_flow
from tests.profile import examples

_LINKTYPE_ETHERNET = 1
_LINKTYPE_LINUX_SLL = 113
A, CNAME, AAAA, HTTPS, NSEC = 1, 5, 28, 65, 47


class Segment(NamedTuple):
    """One TCP/UDP payload from a capture."""

    proto: str
    src: str
    sport: int
    dst: str
    dport: int
    payload: bytes


def l4_payloads(path: Path) -> Iterator[Segment]:
    """Yield the non-empty TCP/UDP payloads of a pcap or pcapng file (Ethernet or Linux SLL)."""
    with path.open("rb") as handle:
        reader = dpkt.pcap.UniversalReader(handle)
        link = dpkt.sll.SLL if reader.datalink() == _LINKTYPE_LINUX_SLL else dpkt.ethernet.Ethernet
        for _ts, frame in reader:
            ip = link(frame).data
            if not isinstance(ip, dpkt.ip.IP | dpkt.ip6.IP6):
                continue
            l4 = ip.data
            if isinstance(l4, dpkt.tcp.TCP | dpkt.udp.UDP) and l4.data:
                family = socket.AF_INET if isinstance(ip, dpkt.ip.IP) else socket.AF_INET6
                yield Segment(
                    "tcp" if isinstance(l4, dpkt.tcp.TCP) else "udp",
                    socket.inet_ntop(family, ip.src),
                    l4.sport,
                    socket.inet_ntop(family, ip.dst),
                    l4.dport,
                    bytes(l4.data),
                )


def mutate(payload: bytes, noise: bytes) -> bytes:
    """Property-test helper: flip the bits ``noise[2:]`` names (2 bytes each), cut at ``noise[:2]``.

    One ``st.binary`` draw is far cheaper for Hypothesis than lists of integers.
    """
    data = bytearray(payload)
    for index in range(2, len(noise) - 1, 2):
        bit = int.from_bytes(noise[index : index + 2], "big") % (len(data) * 8)
        data[bit // 8] ^= 1 << (bit % 8)
    if len(noise) < 2:
        return bytes(data)
    return bytes(data[: int.from_bytes(noise[:2], "big") % (len(data) + 1)])


# ---- hand-built DNS messages -------------------------------------------------------------


def _name(name: str) -> bytes:
    labels = [label.encode() for label in name.rstrip(".").split(".") if label]
    return b"".join(bytes([len(label)]) + label for label in labels) + b"\x00"


def _rr(owner: bytes, rtype: int, ttl: int, rdata: bytes, rclass: int = 1) -> bytes:
    return owner + struct.pack(">HHIH", rtype, rclass, ttl, len(rdata)) + rdata


def _message(
    question: bytes | None, answers: list[bytes], *, txid: int = 0x1234, flags: int = 0x8180
) -> bytes:
    header = struct.pack(">HHHHHH", txid, flags, 1 if question else 0, len(answers), 0, 0)
    return header + (question or b"") + b"".join(answers)


def _cname_chain_response() -> bytes:
    question = _name("Cam.Example.COM.") + struct.pack(">HH", A, 1)
    return _message(
        question,
        [
            _rr(b"\xc0\x0c", CNAME, 300, _name("edge.cdn.net")),  # owner via compression pointer
            _rr(_name("edge.cdn.net"), CNAME, 60, _name("node7.cdn.net")),
            _rr(_name("node7.cdn.net"), A, 120, bytes([203, 0, 113, 7])),
            _rr(_name("node7.cdn.net"), AAAA, 30, socket.inet_pton(socket.AF_INET6, "2001:db8::7")),
        ],
    )


def test_cname_chain_resolves_to_the_asked_name_with_the_smallest_ttl() -> None:
    msg = parse_dns(_cname_chain_response())
    assert msg is not None
    assert (msg.txid, msg.is_response, msg.qname, msg.qtype, msg.rcode) == (
        0x1234,
        True,
        "cam.example.com",
        A,
        0,
    )
    assert msg.answers[0] == DnsRecord("cam.example.com", "CNAME", "edge.cdn.net", 300)
    assert msg.answers[2] == DnsRecord("node7.cdn.net", "A", "203.0.113.7", 120)
    assert resolve_chain(msg) == {
        "203.0.113.7": ("cam.example.com", 60),
        "2001:db8::7": ("cam.example.com", 30),
    }


def test_unknown_types_do_not_sink_the_answers() -> None:
    question = _name("cam.example.com") + struct.pack(">HH", A, 1)
    payload = _message(
        question,
        [
            _rr(_name("cam.example.com"), HTTPS, 60, b"\x00\x01\x00"),
            _rr(_name("cam.example.com"), NSEC, 60, b"\x00\x00\x06\x40"),
            _rr(_name("cam.example.com"), A, 60, bytes([198, 51, 100, 1])),
            _rr(_name("cam.example.com"), A, 60, bytes([198, 51, 100, 2]), rclass=3),  # CHAOS
        ],
    )
    msg = parse_dns(payload)
    assert msg is not None
    assert msg.answers == (DnsRecord("cam.example.com", "A", "198.51.100.1", 60),)


def test_truncated_last_answer_keeps_the_complete_ones() -> None:
    payload = _cname_chain_response()
    msg = parse_dns(payload[:-5])
    assert msg is not None
    assert [record.rtype for record in msg.answers] == ["CNAME", "CNAME", "A"]


def test_address_outside_the_chain_keeps_its_owner_name() -> None:
    question = _name("cam.example.com") + struct.pack(">HH", A, 1)
    payload = _message(question, [_rr(_name("other.example.net"), A, 9, bytes([192, 0, 2, 9]))])
    msg = parse_dns(payload)
    assert msg is not None
    assert resolve_chain(msg) == {"192.0.2.9": ("other.example.net", 9)}


def test_resolve_chain_survives_a_cname_loop() -> None:
    records = (
        DnsRecord("a.example", "CNAME", "b.example", 10),
        DnsRecord("b.example", "CNAME", "a.example", 10),
        DnsRecord("b.example", "A", "192.0.2.1", 10),
    )
    msg = DnsMessage(1, True, "x.example", A, 0, records)
    name, ttl = resolve_chain(msg)["192.0.2.1"]
    assert name in {"a.example", "b.example"}
    assert ttl == 10


def test_compression_pointer_loop_is_rejected_without_hanging() -> None:
    # The question name points at itself: dpkt refuses pointers that do not go backwards.
    payload = struct.pack(">HHHHHH", 1, 0x0100, 1, 0, 0, 0) + b"\xc0\x0c" + struct.pack(">HH", 1, 1)
    assert parse_dns(payload) is None


def test_bad_names_become_none() -> None:
    question = b"\x03c\x01m\x07example\x00" + struct.pack(">HH", A, 1)
    msg = parse_dns(_message(question, [], flags=0x0100))
    assert msg is not None
    assert msg.qname is None
    assert msg.is_response is False
    assert normalize_name("a" * 253) == "a" * 253
    assert normalize_name("a" * 254) is None
    assert normalize_name("WWW.Example.ORG.") == "www.example.org"
    assert normalize_name(".") is None


def test_answers_are_capped() -> None:
    owner = _name("many.example")
    answers = [_rr(owner, A, 5, bytes([10, 0, i // 256, i % 256])) for i in range(200)]
    msg = parse_dns(_message(None, answers))
    assert msg is not None
    assert len(msg.answers) == MAX_ANSWERS


def test_dns_over_tcp_two_messages_and_a_partial_third() -> None:
    first = _cname_chain_response()
    second = _message(
        _name("nvr.example") + struct.pack(">HH", A, 1),
        [_rr(b"\xc0\x0c", A, 7, bytes([192, 0, 2, 50]))],
        txid=2,
    )
    stream = b"".join(struct.pack(">H", len(m)) + m for m in (first, second, first))
    messages = parse_dns_tcp(stream[:-3])
    assert [m.txid for m in messages] == [0x1234, 2]
    assert resolve_chain(messages[1]) == {"192.0.2.50": ("nvr.example", 7)}
    assert parse_dns_tcp(b"\x00") == []
    assert parse_dns_tcp(b"\x00\x03abc" + struct.pack(">H", len(second)) + second)[0].txid == 2


def test_too_short_is_none() -> None:
    assert parse_dns(b"") is None
    assert parse_dns(b"\x00" * 11) is None


# ---- real captures -----------------------------------------------------------------------


def _dns_payloads(*parts: str) -> list[bytes]:
    return [
        seg.payload
        for seg in l4_payloads(corpus_file(*parts))
        if seg.proto == "udp" and {53, 5353} & {seg.sport, seg.dport}
    ]


def test_dpkt_capture_resolves_www_wireshark_org() -> None:
    messages = [parse_dns(p) for p in _dns_payloads("pcaps", "protocols", "dpkt_dns_icmp.pcap")]
    assert all(m is not None for m in messages)
    answered = [m for m in messages if m is not None and m.is_response and m.qtype == A]
    assert answered
    assert resolve_chain(answered[0]) == {"174.137.42.65": ("www.wireshark.org", 600)}
    ptr = [m for m in messages if m is not None and m.qname == "8.8.8.8.in-addr.arpa"]
    assert len(ptr) == 2
    assert ptr[1].answers == ()  # PTR answers are not kept


def test_mdns_answers_without_question_use_the_owner_name() -> None:
    messages = [parse_dns(p) for p in _dns_payloads("pcaps", "protocols", "zeek_mdns.pcap")]
    assert all(m is not None for m in messages)
    queries = [m for m in messages if m is not None and not m.is_response]
    assert ("_ipp._tcp.local", 12) in {(m.qname, m.qtype) for m in queries}
    addresses: dict[str, tuple[str, int]] = {}
    for message in messages:
        if message is not None and message.is_response:
            addresses.update(resolve_chain(message))
    assert addresses["10.0.2.7"][0] == "johanna-qemu-virtual-machine.local"
    assert addresses["fd52:429e:c03c:8235:883c:d6ff:fee1:4dc4"][0].endswith(".local")


def test_malformed_captures_never_raise() -> None:
    corrupt = [parse_dns(p) for p in _dns_payloads("pcaps", "malformed", "zeek_dns-corrupt.pcap")]
    answered = [m for m in corrupt if m is not None and m.answers]
    assert resolve_chain(answered[0]) == {
        "192.0.78.212": ("zeek.org", 60),
        "192.0.78.150": ("zeek.org", 60),
    }
    hostile = [parse_dns(p) for p in _dns_payloads("pcaps", "malformed", "ndpi_malformed_dns.pcap")]
    assert {m.qname for m in hostile if m is not None} == {"www.xt.com"}
    assert None in hostile  # the over-long names make those responses unparseable


# ---- properties --------------------------------------------------------------------------


@settings(max_examples=examples(2000), deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_never_raise(data: bytes) -> None:
    result = parse_dns(data)
    assert result is None or isinstance(result, DnsMessage)
    assert all(isinstance(m, DnsMessage) for m in parse_dns_tcp(data))
    if result is not None:
        assert isinstance(resolve_chain(result), dict)


@settings(max_examples=examples(2000), deadline=None)
@given(st.binary(max_size=10))
def test_truncated_or_bit_flipped_messages_never_raise(noise: bytes) -> None:
    payload = mutate(_cname_chain_response(), noise)
    result = parse_dns(payload)
    assert result is None or isinstance(resolve_chain(result), dict)
    assert len(parse_dns_tcp(struct.pack(">H", len(payload)) + payload)) <= 1


def test_more_questions_than_zeek_takes_is_not_dns() -> None:
    question = b"\x03cam\x00\x00\x01\x00\x01"

    def query(count: int) -> bytes:
        return struct.pack(">HHHHHH", 1, 0x0100, count, 0, 0, 0) + question * count

    for count, named in ((ZEEK_MAX_QUERIES, True), (ZEEK_MAX_QUERIES + 1, False)):
        flow = udp_flow(b"\x0a\x00\x00\x01", 40000, b"\x0a\x00\x00\x35", 53)
        DnsParser().udp(Recorder(), flow, True, query(count), 0.0)
        assert ("service" in (flow.app or {})) is named
