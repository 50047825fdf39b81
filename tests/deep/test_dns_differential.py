"""The DNS parser against its previous, dpkt-based version (``tests/deep/dns_reference.py``),
and the mDNS walk against itself with dpkt's name decoder: identical results on every payload
of the real captures, on bit-flipped and cut copies of them, and on generated hostile
messages (compression-pointer chains and loops, long and cut labels, bytes that are not
UTF-8). The name decoder alone: ``tests/deep/test_dnsname.py``.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dpkt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netwatch.deep import dns, mdns
from netwatch.deep.base import service
from netwatch.deep.dns import DnsParser, parse_dns, parse_dns_tcp
from netwatch.enrich.names import PassiveDns
from netwatch.flow.table import Flow
from tests.conftest import PCAP_CORPUS
from tests.deep import dns_reference as reference
from tests.deep.lanctx import Recorder, udp_flow
from tests.deep.test_dns import _cname_chain_response, l4_payloads, mutate
from tests.profile import examples

REPO = Path(__file__).resolve().parents[2]
DNS_PORTS = frozenset({53, 5353, 5355})


def _payloads(root: Path) -> Iterator[tuple[bool, bytes]]:
    """(is a DNS port, payload) for every TCP/UDP payload of the captures under ``root``; a
    capture cut inside a record gives what precedes the cut."""
    for path in sorted(p for p in root.rglob("*.pcap*") if p.is_file()):
        try:
            for seg in l4_payloads(path):
                yield bool(DNS_PORTS & {seg.sport, seg.dport}), seg.payload
        except dpkt.NeedData:
            continue


def _reference_summary(payload: bytes) -> tuple[bool, str | None, int, list[Any]] | None:
    """What the DNS parser takes from a message, from the reference walk: the flag, the
    question, QDCOUNT and ``resolve_chain``'s mapping with the addresses packed."""
    msg = reference.parse_dns(payload)
    if msg is None:
        return None
    chain = [
        (socket.inet_pton(socket.AF_INET6 if ":" in text else socket.AF_INET, text), name, ttl)
        for text, (name, ttl) in dns.resolve_chain(msg).items()
    ]
    return msg.is_response, msg.qname, int.from_bytes(payload[4:6], "big"), chain


def _same(payload: bytes) -> None:
    """The reference's answer, from the compiled message walk and summary (when built) and
    from the Python ones."""
    expected = reference.parse_dns(payload)
    summary = _reference_summary(payload)
    assert parse_dns(payload) == expected, payload.hex()
    assert dns._summary_py(payload) == summary, payload.hex()
    if dns.C_MESSAGE is not None:
        assert dns.C_MESSAGE(payload) == summary, payload.hex()
    if dns.C_SCAN is not None:
        compiled, dns.C_SCAN = dns.C_SCAN, None
        try:
            assert parse_dns(payload) == expected, payload.hex()
            assert dns._summary_py(payload) == summary, payload.hex()
        finally:
            dns.C_SCAN = compiled


@pytest.fixture(scope="module")
def captured() -> list[tuple[bool, bytes]]:
    """Every payload of the real corpus and of the repository's captures."""
    if not PCAP_CORPUS.is_dir():
        pytest.skip(f"{PCAP_CORPUS} is absent: the real-capture tests need ../shared/corpus")
    return [*_payloads(PCAP_CORPUS), *_payloads(REPO / "pcaps")]


def test_every_captured_payload_parses_as_before(captured: list[tuple[bool, bytes]]) -> None:
    dns = 0
    for is_dns, payload in captured:
        _same(payload)
        dns += is_dns
    assert dns > 2000  # the corpus's DNS, mDNS and LLMNR messages are all in there


def test_the_captured_dns_survives_bit_flips_and_cuts_as_before(
    captured: list[tuple[bool, bytes]],
) -> None:
    messages = [payload for is_dns, payload in captured if is_dns and len(payload) >= 12]
    for index, payload in enumerate(messages):
        for salt in range(4):
            noise = struct.pack(">HHHH", index * 7 + salt * 131, index + salt, salt * 977, index)
            mutated = mutate(payload, noise if salt else noise[2:])
            _same(mutated)


# ---- generated messages ----------------------------------------------------------------

_TOKEN = st.one_of(
    st.builds(lambda n, text: bytes([n]) + text, st.integers(0, 70), st.binary(max_size=70)),
    st.builds(lambda hi, lo: bytes([0xC0 | hi, lo]), st.integers(0, 0x3F), st.integers(0, 255)),
    st.builds(lambda lo: bytes([0xC0, lo]), st.integers(0, 80)),  # pointers into the message
    st.builds(lambda n: bytes([n]) + b"x" * n, st.integers(40, 63)),  # long labels
    st.sampled_from([b"\x00", b"\x03cam\x00", b"\x02\xc3\xa9", b"\x01\xff", b"\x40", b"\xc0"]),
)
_BUFFERS = st.lists(_TOKEN, max_size=24).map(b"".join)


_HEADERS = st.builds(
    lambda txid, flags, qd, an: struct.pack(">HHHHHH", txid, flags, qd, an, 0, 0),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF),
    st.integers(0, 3),
    st.integers(0, 8),
)
_RECORD_TAILS = st.builds(
    lambda rtype, rclass, ttl, rdata: struct.pack(">HHIH", rtype, rclass, ttl, len(rdata)) + rdata,
    st.sampled_from([1, 5, 28, 12, 16, 33, 65]),
    st.sampled_from([1, 0x8001, 3]),
    st.integers(0, 2**32 - 1),
    st.one_of(st.binary(max_size=20), _BUFFERS),
)


@settings(max_examples=examples(3000), deadline=None)
@given(_HEADERS, st.lists(st.one_of(_TOKEN, _RECORD_TAILS), max_size=16).map(b"".join))
def test_generated_messages_parse_as_before(header: bytes, body: bytes) -> None:
    payload = header + body
    _same(payload)
    framed = struct.pack(">H", len(payload)) + payload
    assert parse_dns_tcp(framed) == [m for m in [reference.parse_dns(payload)] if m is not None]


@settings(max_examples=examples(2000), deadline=None)
@given(st.binary(max_size=12))
def test_bit_flipped_cname_chains_parse_as_before(noise: bytes) -> None:
    payload = mutate(_cname_chain_response(), noise)
    _same(payload)


# ---- mDNS: the same walk with dpkt's decoder -----------------------------------------------


def _dpkt_name(payload: bytes, off: int) -> tuple[str, int]:
    """The previous decoding: dpkt's (its errors ended the walk, as ValueError does now)."""
    try:
        name, end = dpkt.dns.unpack_name(payload, off)
    except reference.NAME_ERRORS as exc:
        raise ValueError(str(exc)) from exc
    return str(name), int(end)


def test_mdns_announcements_parse_as_with_dpkts_decoder(
    captured: list[tuple[bool, bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    messages = [payload for is_dns, payload in captured if is_dns]
    mutated = [mutate(p, struct.pack(">HHH", i, i * 7, i * 13)) for i, p in enumerate(messages)]
    mine = [mdns.parse_mdns(p) for p in messages + mutated]
    monkeypatch.setattr(mdns, "_name", _dpkt_name)  # the walk as it was, names through dpkt
    assert mine == [mdns.parse_mdns(p) for p in messages + mutated]
    assert sum(found is not None and bool(found.names) for found in mine) > 100


# ---- the compiled walk against the Python one --------------------------------------------

_needs_c = pytest.mark.skipif(
    dns.C_SCAN is None or dns.C_MESSAGE is None, reason="netwatch._deep not built or not used"
)


def _both(payload: bytes) -> None:
    """The compiled walk and the Python one give the same fields; so do the compiled
    summary (``dns_message``) and the Python one over the Python walk."""
    assert dns.C_SCAN is not None
    compiled = dns._parse(payload)
    assert compiled == dns._parse_py(payload), payload.hex()
    assert dns.C_MESSAGE is not None
    summary = dns.C_MESSAGE(payload)
    scan, dns.C_SCAN = dns.C_SCAN, None
    try:
        assert summary == dns._summary_py(payload), payload.hex()
    finally:
        dns.C_SCAN = scan


def _name(labels: list[bytes]) -> bytes:
    return b"".join(bytes([len(label)]) + label for label in labels) + b"\x00"


_LABELS = st.lists(
    st.one_of(
        st.binary(min_size=1, max_size=63),
        st.sampled_from([b"Cam", b"EXAMPLE", b"x" * 63, b"\xc3\xa9", b"\xff", b"a.b", b"\x07"]),
        st.builds(lambda n: b"y" * n, st.integers(1, 63)),
    ),
    max_size=8,
)


@_needs_c
@settings(max_examples=examples(3000), deadline=None)
@given(
    _HEADERS,
    _LABELS,
    st.lists(
        st.tuples(
            st.one_of(st.just(b"\xc0\x0c"), _LABELS.map(_name), _BUFFERS),
            st.sampled_from([1, 5, 28, 12]),
            st.sampled_from([1, 0x8001, 3]),
            st.one_of(
                st.binary(min_size=4, max_size=4),
                st.binary(min_size=16, max_size=16),
                st.just(b"\xc0\x0c"),
                _LABELS.map(_name),
                st.binary(max_size=20),
            ),
        ),
        max_size=6,
    ),
    st.integers(0, 12),
)
def test_messages_walk_alike_in_c(
    header: bytes,
    question: list[bytes],
    records: list[tuple[bytes, int, int, bytes]],
    cut: int,
) -> None:
    """Questions and answers of every kept type and others, owners as pointers, names up to
    and past 255 bytes, upper case, not UTF-8, with dots and control bytes in labels; each
    message whole and cut."""
    body = _name(question) + b"\x00\x01\x00\x01"
    for owner, rtype, rclass, rdata in records:
        body += owner + struct.pack(">HHIH", rtype, rclass, 3600 + rtype, len(rdata)) + rdata
    payload = header + body
    _both(payload)
    _both(payload[: max(0, len(payload) - cut)])


@_needs_c
def test_edge_messages_walk_alike_in_c() -> None:
    """The 255-byte name bound, a pointer to itself and forwards, a cut pointer and label,
    more questions than MAX_QUESTIONS, a CNAME whose target runs past its rdata."""
    head = struct.pack(">HHHHHH", 7, 0x8180, 1, 2, 0, 0)
    for total in range(250, 260):
        labels, left = [], total
        while left > 0:
            n = min(63, left - 1) if left > 1 else 1
            labels.append(b"a" * max(n, 1))
            left -= len(labels[-1]) + 1
        question = _name(labels) + b"\x00\x01\x00\x01"
        answer = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + b"\x01\x02\x03\x04"
        for payload in (head + question + answer * 2, head + question[:-5]):
            for cut in range(len(payload) + 1):
                _both(payload[:cut])
    odd = [
        head + b"\xc0\x0c\x00\x01\x00\x01",  # a pointer to itself
        head + b"\xc0\x20\x00\x01\x00\x01",  # forwards
        head + b"\x03cam\xc0",  # a cut pointer
        head + b"\x05ca",  # a cut label
        head + b"\x41abc\x00\x00\x01\x00\x01",  # a label length of 65
        struct.pack(">HHHHHH", 1, 0x8180, 65, 1, 0, 0) + b"\x00\x00\x01\x00\x01" * 65,
        head
        + _name([b"q"])
        + b"\x00\x05\x00\x01"
        + b"\xc0\x0c"
        + struct.pack(">HHIH", 5, 1, 60, 2)
        + _name([b"t", b"example"]),
        head
        + _name([b"Q", b"EXAMPLE"])
        + b"\x00\x1c\x00\x01"
        + b"\xc0\x0c"
        + struct.pack(">HHIH", 28, 1, 60, 16)
        + bytes(range(16))
        + b"\xc0\x0c"
        + struct.pack(">HHIH", 28, 1, 60, 15)
        + bytes(15),
    ]
    target = _name([b"t", b"example"])
    for delta in (-2, -1, 0, 1, 2):  # the CNAME target ends before, at or past its rdata
        rdata = struct.pack(">HHIH", 5, 1, 60, len(target) + delta) + target + bytes(4)
        odd.append(head + _name([b"q"]) + b"\x00\x05\x00\x01" + b"\xc0\x0c" + rdata)
    for payload in odd:
        for cut in range(len(payload) + 1):
            _both(payload[:cut])


# ---- the compiled summary: names and CNAME chains -------------------------------------------

#: Names that differ only in case, in a trailing dot or in being ASCII; with dots and control
#: characters inside labels (U+0000, U+001F, U+007F, U+0085 as C2 85, U+009F; the space and
#: U+00A0 just past the ranges),
#: non-ASCII letters whose lowercase is longer or shorter ("İ" -> "i̇", "ẞ" -> "ß"), and
#: names around the 253-character and 255-byte bounds.
_WORDS = [
    [b"cam", b"example"],
    [b"CAM", b"Example"],
    [b"cam", b"example."],
    [b"cam."],
    [b".."],
    [b"."],
    [b"edge", b"cdn"],
    [b"EDGE", b"CDN"],
    [b"node7", b"cdn"],
    [b"\xc3\x89cole", b"fr"],
    [b"\xc3\xa9cole", b"fr"],
    [b"\xc4\xb0stanbul"],
    [b"\xe1\xba\x9e"],
    [b"a\x7fb"],
    [b"a\xc2\x85b"],
    [b"a\xc2\x9fb"],
    [b"a\xc2\xa0b"],
    [b"tab\tname"],
    [b"a\x1fb"],
    [b"a\x00b"],
    [b"a b"],
    [b"\xff\xfe"],
    [b"x" * 63, b"y" * 63, b"z" * 63, b"w" * 61],  # 253 characters
    [b"x" * 63, b"y" * 63, b"z" * 63, b"w" * 62],  # 254 characters, 256 bytes: too long
    [b"x" * 63, b"y" * 63, b"z" * 63, b"w" * 60],
    [b"x" * 63, b"y" * 63, b"z" * 63, b"\xc3\xa9" * 30],  # 252 characters, 254 bytes
]
_WORD = st.sampled_from(_WORDS)


def _encoded(labels: list[bytes], question: list[bytes], pointer: bool) -> bytes:
    """The name on the wire: a pointer to the question when it is the question's name."""
    if pointer and labels == question:
        return b"\xc0\x0c"
    return _name(labels)


@_needs_c
@settings(max_examples=examples(3000), deadline=None)
@given(
    _WORD,
    st.lists(
        st.tuples(
            _WORD,
            st.sampled_from([1, 5, 28, 5, 1]),
            st.sampled_from([1, 1, 0x8001, 3]),
            st.integers(0, 2**32 - 1),
            st.one_of(_WORD, st.sampled_from([b"\x01\x02\x03\x04", b"\x0a\x00\x00\x01"])),
            st.booleans(),
        ),
        max_size=10,
    ),
    st.integers(0, 0xFFFF),
    st.sampled_from([0, 1, 2, 26]),
)
def test_cname_chains_summarise_alike_in_c(
    question: list[bytes],
    records: list[tuple[list[bytes], int, int, int, Any, bool]],
    flags: int,
    questions: int,
) -> None:
    """Answers linking a few names by CNAMEs (chains, loops, forks, aliases of the question
    and of nothing), the same address twice, A rdata given as AAAA and as names, every
    name case, dot and UTF-8 rule: the compiled summary is the Python one."""
    body = _name(question) + b"\x00\x01\x00\x01" if questions else b""
    body += (_name(question) + b"\x00\x01\x00\x01") * max(0, questions - 1)
    for owner, rtype, rclass, ttl, value, pointer in records:
        if isinstance(value, bytes):
            rdata = value * (4 if rtype == 28 else 1)
        else:
            rdata = _encoded(value, question, pointer and questions > 0)
        wire = _encoded(owner, question, pointer and questions > 0)
        body += wire + struct.pack(">HHIH", rtype, rclass, ttl, len(rdata)) + rdata
    payload = struct.pack(">HHHHHH", 1, flags, questions, len(records), 0, 0) + body
    _both(payload)
    _same(payload)


def test_a_cname_fork_resolves_through_the_first_alias() -> None:
    """Two CNAMEs to one target: the walk back takes the first (``_chain``'s ``setdefault``),
    in the compiled summary as in the Python one."""
    rdata = _name([b"edge", b"cdn"])
    payload = (
        struct.pack(">HHHHHH", 1, 0x8180, 1, 3, 0, 0)
        + _name([b"cam", b"example"])
        + b"\x00\x01\x00\x01"
        + _name([b"other", b"example"])
        + struct.pack(">HHIH", 5, 1, 10, len(rdata))
        + rdata
        + b"\xc0\x0c"
        + struct.pack(">HHIH", 5, 1, 300, len(rdata))
        + rdata
        + rdata
        + struct.pack(">HHIH", 1, 1, 100, 4)
        + bytes([192, 0, 2, 1])
    )
    expected = (True, "cam.example", 1, [(bytes([192, 0, 2, 1]), "other.example", 10)])
    assert dns._summary_py(payload) == expected
    if dns.C_MESSAGE is not None:
        assert dns.C_MESSAGE(payload) == expected
    _same(payload)


@_needs_c
def test_many_distinct_names_summarise_alike_in_c() -> None:
    """More distinct names in a message than the compiled summary remembers (16), each
    named again after the others, a CNAME chain longer than ``MAX_CHAIN_STEPS`` and more
    answers than ``MAX_ANSWERS``: the same answers as the Python one."""
    names = [[b"host%d" % i, b"Example"] for i in range(40)]
    records = b""
    for i, labels in enumerate(names):  # host<i> CNAME host<i+1>, the last with an address
        target = names[i + 1] if i + 1 < len(names) else None
        if target is None:
            records += _name(labels) + struct.pack(">HHIH", 1, 1, 7, 4) + bytes([10, 0, 0, 9])
        else:
            rdata = _name(target)
            records += _name(labels) + struct.pack(">HHIH", 5, 1, 100 - i, len(rdata)) + rdata
    for i, labels in enumerate(names):
        records += _name(labels) + struct.pack(">HHIH", 1, 1, 50, 4) + bytes([10, 0, 1, i])
    head = struct.pack(">HHHHHH", 1, 0x8180, 1, 2 * len(names), 0, 0)
    payload = head + _name(names[0]) + b"\x00\x01\x00\x01" + records
    _both(payload)
    _same(payload)
    summary = dns.C_MESSAGE(payload) if dns.C_MESSAGE is not None else None
    assert summary is not None
    assert len(summary[3]) == 1 + dns.MAX_ANSWERS - len(names)  # the answers kept
    hops = dns.MAX_CHAIN_STEPS
    assert summary[3][0] == (bytes([10, 0, 0, 9]), f"host{len(names) - 1 - hops}.example", 7)
    assert summary[3][1:3] == [(bytes([10, 0, 1, i]), "host0.example", 50) for i in (0, 1)]


# ---- the parser as a whole against its previous message handling --------------------------


def _reference_udp(ctx: Recorder, flow: Flow, is_orig: bool, data: bytes, ts: float) -> None:
    """``DnsParser.udp`` before the summary: the reference message, its question count,
    and ``resolve_chain``'s mapping given to ``PassiveDns.observe``."""
    if reference.parse_dns(data) is None:
        ctx.count("dns_unparsed")
    else:
        _reference_message(ctx, flow, is_orig, data, ts)


def _reference_tcp(ctx: Recorder, flow: Flow, is_orig: bool, buf: bytes, ts: float) -> None:
    """``DnsParser.tcp`` before the summary (the verdict is not compared: unchanged)."""
    off = 0
    while len(buf) >= off + 2:
        size = int.from_bytes(buf[off : off + 2], "big")
        if len(buf) < off + 2 + size:
            return
        if reference.parse_dns(buf[off + 2 : off + 2 + size]) is not None:
            _reference_message(ctx, flow, is_orig, buf[off + 2 : off + 2 + size], ts)
        off += 2 + size


def _reference_message(ctx: Recorder, flow: Flow, is_orig: bool, data: bytes, ts: float) -> None:
    """``DnsParser._message`` before the summary, for a message that parses."""
    msg = reference.parse_dns(data)
    assert msg is not None
    ctx.count("dns")
    if dns.question_count(data) <= dns.ZEEK_MAX_QUERIES:
        service(flow, "dns")
    if msg.qname:
        flow.app_set("dns_query", msg.qname)
    if msg.is_response and msg.answers:
        client = flow.resp_h if is_orig else flow.orig_h
        ctx.names.observe(client, dns.resolve_chain(msg), ts)


def test_the_parser_handles_captured_dns_as_before(captured: list[tuple[bool, bytes]]) -> None:
    """Every captured DNS payload and a bit-flipped copy, through ``DnsParser.udp`` and, three
    to a TCP buffer, ``DnsParser.tcp`` (the compiled summary when built, then the Python
    one) and through the previous handling:
    the same counts, flow services and questions, and the same passive DNS table, in order,
    with the same counters and ``on_learn`` calls."""
    messages = [payload for is_dns, payload in captured if is_dns]
    messages += [mutate(p, struct.pack(">HHH", i, i * 5, i * 11)) for i, p in enumerate(messages)]
    client, server = socket.inet_aton("10.0.0.11"), socket.inet_aton("10.0.0.53")

    streams = [  # DNS over TCP: three messages framed in one buffer, the last one cut
        b"".join(struct.pack(">H", len(m)) + m for m in messages[i : i + 3])[:-1]
        for i in range(0, len(messages), 3)
    ]

    def run(
        handle: Callable[[Recorder, Flow, bool, bytes, float], object], inputs: list[bytes]
    ) -> list[Any]:
        ctx = Recorder(names=PassiveDns(500, 60, 3600))
        heard: list[Any] = []
        ctx.names.on_learn = lambda *learnt: heard.append(learnt)
        apps = []
        for index, payload in enumerate(inputs):
            flow = udp_flow(client, 40000 + index % 7, server, 53)
            handle(ctx, flow, bool(index % 3), payload, float(index))
            apps.append(flow.app)
        names = ctx.names
        return [ctx.counts, apps, list(names._table.items()), heard, names.evictions]

    parser = DnsParser()
    for mine, theirs, inputs in (
        (parser.udp, _reference_udp, messages),
        (parser.tcp, _reference_tcp, streams),
    ):
        expected = run(theirs, inputs)
        assert run(mine, inputs) == expected
        compiled, dns.C_MESSAGE = dns.C_MESSAGE, None
        try:
            assert run(mine, inputs) == expected
        finally:
            dns.C_MESSAGE = compiled
        assert sum(bool(apps) for apps in expected[1]) > len(inputs) // 2
        assert len(expected[3]) > 300
