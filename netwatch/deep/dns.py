"""DNS deep parser: questions, A/AAAA/CNAME answers, and the address -> asked-name map.

Runs only on the packets the fast path flags as DNS (UDP/TCP 53, mDNS 5353); never per packet.
Reads no configuration. :class:`DnsParser` is the registered deep parser: it claims UDP 53,
5353 (mDNS) and 5355 (LLMNR) and TCP 53 (2-byte length-prefixed messages), and feeds the
answers to the passive DNS cache.

Why this is not a plain ``dpkt.dns.DNS(payload)`` (checked with dpkt 1.9.8): dpkt decodes
every section eagerly and rejects the *whole* message when any record anywhere is of a type it
does not know (NSEC in mDNS additional sections, RRSIG, HTTPS/SVCB answers: ``UnpackError``),
when a TXT string is not UTF-8 (``UnicodeDecodeError``) or when a record is cut inside its
name or fixed fields (snaplen-truncated captures), yet silently keeps a cut rdata (an 11-byte
AAAA); and it offers no cap on work.
So this module walks only the question and answer sections itself with ``struct``, stepping
over the names of records it does not keep without decoding them (PTR/SRV/TXT-heavy mDNS),
and keeping the complete answers that precede a truncated or malformed one. Names are
decoded by :func:`~netwatch.deep.dnsname.read_name`, which gives exactly what dpkt's
``dpkt.dns.unpack_name`` gives (the same rules: compression pointers must point backwards,
so pointer loops cannot spin; names are capped at 255 bytes; labels must be UTF-8), checked
by a differential property test against dpkt; it is 1.5 to 2.5 times cheaper, and a
message's answers that point at a name already decoded (the question, nearly always) reuse
it instead of decoding it again. With the compiled part built (``netwatch._deep``, unless
``NETWATCH_PURE=1`` or ``NETWATCH_CORE=python``) the same walk runs in C and only the
names' normalisation and the records stay here (``tests/deep/test_dns_differential.py``
compares both walks with the previous dpkt-based parser and with each other); and what
:class:`DnsParser` takes from a message (:func:`_summary_py`: the flag, the question,
QDCOUNT and the answers' CNAME chains resolved, the addresses packed for the passive DNS
cache) is one C call, ``dns_message``, compared with :func:`_summary_py` the same way.

Known limits:
- Only the first question is reported (mDNS queries may carry several); a message with more
  than ``MAX_QUESTIONS`` questions is reported without answers.
- Only class-IN A, AAAA and CNAME answers are kept (at most ``MAX_ANSWERS``); authority and
  additional sections are never read.
- A name that is not valid UTF-8, has control characters or is longer than 253 characters is
  rejected: as the question it gives ``qname=None``; as an answer owner/target it drops the
  record.  The root name (empty) also gives ``None``.
- ``resolve_chain`` trusts the answer section as given; it does not check bailiwick.
"""

from __future__ import annotations

import _socket as socket  # no socket.py (enums, selectors) at start
import functools
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from netwatch.compiled import optional
from netwatch.deep.base import Context, DeepParser, Verdict, service
from netwatch.deep.dnsname import read_name
from netwatch.deep.mdns import observe_mdns

if TYPE_CHECKING:
    from netwatch.flow.table import Flow

MAX_ANSWERS = 64  # answers examined per message (bounds work on hostile input)
MAX_QUESTIONS = 64  # questions examined; answers are not read past more questions than this
MAX_TCP_MESSAGES = 32  # messages framed per parse_dns_tcp call
MAX_NAME_CHARS = 253
MAX_CHAIN_STEPS = 16  # CNAME hops followed by resolve_chain

_HEADER = struct.Struct(">HHHHHH")
_QUESTION_TAIL = struct.Struct(">HH")
_RR_TAIL = struct.Struct(">HHIH")
_QR_BIT = 0x8000
_CLASS_MASK = 0x7FFF  # mDNS uses the top bit as cache-flush / unicast-response
_HEAD = struct.Struct(">HHHH")  # id, flags, QDCOUNT, ANCOUNT
_A, _CNAME, _AAAA, _IN = 1, 5, 28, 1  # RFC 1035 / RFC 3596 type and class numbers
_RTYPES = {_A: "A", _AAAA: "AAAA", _CNAME: "CNAME"}
_ADDR_LEN = {_A: (socket.AF_INET, 4), _AAAA: (socket.AF_INET6, 16)}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

#: Zeek's ``dns_max_queries`` default: a message asking more questions is a protocol
#: violation for its DNS analyzer (no ``dns`` service from it).
ZEEK_MAX_QUERIES = 25

MDNS_PORT = 5353  # mDNS / DNS-SD (RFC 6762): answers name the device and its services


@dataclass(frozen=True, slots=True)
class DnsRecord:
    """One kept answer: ``rtype`` is 'A', 'AAAA' or 'CNAME'; ``value`` an IP text or a name."""

    name: str
    rtype: str
    value: str
    ttl: int


@dataclass(frozen=True, slots=True)
class DnsMessage:
    """The parts of a DNS message that netwatch uses."""

    txid: int
    is_response: bool
    qname: str | None
    qtype: int | None
    rcode: int
    answers: tuple[DnsRecord, ...]


def question_count(payload: bytes) -> int:
    """QDCOUNT of a DNS message header (0 when the header is cut)."""
    return int.from_bytes(payload[4:6], "big") if len(payload) >= 6 else 0


def normalize_name(name: str) -> str | None:
    """Lowercase, strip one trailing dot; None if empty, > 253 chars or has control chars.

    Shared by the TLS (SNI) and HTTP (Host) parsers. IDNA labels are left as they are.
    """
    if name.endswith("."):
        name = name[:-1]
    if not name or len(name) > MAX_NAME_CHARS or _CONTROL.search(name):
        return None
    return name.lower()


#: ``normalize_name`` for the DNS parser, remembering the last few thousand names (the same
#: names are asked and answered over and over).
_normalized = functools.lru_cache(maxsize=4096)(normalize_name)


def parse_dns(payload: bytes) -> DnsMessage | None:
    """Parse one DNS/mDNS message (a UDP payload); None if it is not parseable DNS."""
    parsed = _parse(payload)
    return None if parsed is None else DnsMessage(*parsed)


_Parsed = tuple[int, bool, str | None, int | None, int, tuple[DnsRecord, ...]]


def _load_scan() -> Callable[[bytes], _Scanned | None] | None:
    """The compiled message walk (``netwatch._deep``), or None when it is not built or the
    compiled code is switched off (``NETWATCH_PURE=1``, ``NETWATCH_CORE=python``)."""
    scan: Callable[[bytes], _Scanned | None] | None = optional("_deep", "dns_scan", loop=True)
    return scan


#: The compiled walk's answer: :data:`_Parsed` before the names are normalised, the answers
#: as (owner, rtype, CNAME target or address text, ttl)
_Scanned = tuple[int, bool, str | None, int | None, int, list[tuple[str, int, str, int]]]
#: The compiled message walk in use (None: :func:`_parse_py` only).
C_SCAN = _load_scan()


#: What :class:`DnsParser` takes from a message: the QR bit, the first question's name
#: normalised, QDCOUNT, and :func:`_chain` of the answers with the addresses packed, as
#: (address, asked name, ttl) in the order the addresses first appear
_Summary = tuple[bool, str | None, int, list[tuple[bytes, str, int]]]


def _load_message() -> Callable[[bytes], _Summary | None] | None:
    """The compiled :func:`_summary_py` (``netwatch._deep.dns_message``), or None as for
    :func:`_load_scan`."""
    summary: Callable[[bytes], _Summary | None] | None = optional("_deep", "dns_message", loop=True)
    return summary


#: The compiled message summary in use (None: :func:`_summary_py`).
C_MESSAGE = _load_message()


def _summary_py(payload: bytes) -> _Summary | None:
    """What :class:`DnsParser` takes from one message (None if it is not parseable DNS):
    :func:`_parse`'s flag and question name, :func:`question_count`, and :func:`_chain`'s
    mapping as (packed address, asked name, ttl) tuples, the form the passive DNS cache
    keys on. ``netwatch._deep.dns_message`` gives the same in one call
    (tests/deep/test_dns_differential.py)."""
    parsed = _parse(payload)
    if parsed is None:
        return None
    _txid, is_response, qname, _qtype, _rcode, answers = parsed
    if not answers:  # a query, mostly: no chain to resolve
        return is_response, qname, (payload[4] << 8) | payload[5], []
    chain = [
        (socket.inet_pton(socket.AF_INET6 if ":" in text else socket.AF_INET, text), name, ttl)
        for text, (name, ttl) in _chain(answers, qname).items()
    ]
    return is_response, qname, (payload[4] << 8) | payload[5], chain  # question_count


def _parse(payload: bytes) -> _Parsed | None:
    """:func:`parse_dns`'s fields, in ``DnsMessage`` order, without building the message:
    the message walked in C when ``netwatch._deep`` is loaded (the same walk as
    :func:`_parse_py`, tests/deep/test_dns_differential.py), the names normalised here."""
    if C_SCAN is None:
        return _parse_py(payload)
    scanned = C_SCAN(payload)
    if scanned is None:
        return None
    txid, is_response, qname, qtype, rcode, kept = scanned
    records: list[DnsRecord] = []
    for owner, rtype, value, ttl in kept:
        name = _normalized(owner)
        if name is None:
            continue
        if rtype == _CNAME:
            target = _normalized(value)
            if target is None:
                continue
            records.append(DnsRecord(name, "CNAME", target, ttl))
        else:
            records.append(DnsRecord(name, _RTYPES[rtype], value, ttl))
    name = None if qname is None else _normalized(qname)
    return txid, is_response, name, qtype, rcode, tuple(records)


def _parse_py(payload: bytes) -> _Parsed | None:
    """:func:`_parse` in Python (without the compiled walk)."""
    size = len(payload)
    if size < _HEADER.size:
        return None
    txid, flags, qdcount, ancount = _HEAD.unpack_from(payload)
    qname: str | None = None
    qtype: int | None = None
    seen: dict[int, tuple[str, int]] = {}
    off = _HEADER.size
    for index in range(min(qdcount, MAX_QUESTIONS)):
        decoded = read_name(payload, off)
        if decoded is None or decoded[1] + _QUESTION_TAIL.size > size:
            return None
        seen[off] = decoded
        name, off = decoded
        if index == 0:
            qname, qtype = _normalized(name), (payload[off] << 8) | payload[off + 1]
        off += _QUESTION_TAIL.size
    if qdcount > MAX_QUESTIONS:
        ancount = 0  # the answer section cannot be located without reading every question
    answers = _read_answers(payload, off, min(ancount, MAX_ANSWERS), seen) if ancount else ()
    return txid, bool(flags & _QR_BIT), qname, qtype, flags & 0xF, answers


def parse_dns_tcp(data: bytes) -> list[DnsMessage]:
    """Parse the complete length-prefixed messages at the start of a DNS-over-TCP stream.

    A trailing incomplete message is ignored; a complete but unparseable one is skipped.
    """
    messages: list[DnsMessage] = []
    off = 0
    for _ in range(MAX_TCP_MESSAGES):
        if off + 2 > len(data):
            break
        end = off + 2 + int.from_bytes(data[off : off + 2], "big")
        if end > len(data):
            break
        message = parse_dns(data[off + 2 : end])
        if message is not None:
            messages.append(message)
        off = end
    return messages


def resolve_chain(msg: DnsMessage) -> dict[str, tuple[str, int]]:
    """Map each A/AAAA address in the answers to (name the client asked for, ttl).

    CNAME records are followed backwards from the address owner towards the question; the
    name reached is ``msg.qname`` for a normal answer.  When the question is missing (mDNS
    announcements) or the chain does not reach it, the first name of the chain is used.
    The ttl is the smallest along the chain (when the association stops being valid).
    The first occurrence of an address wins.
    """
    return _chain(msg.answers, msg.qname)


def _chain(answers: tuple[DnsRecord, ...], qname: str | None) -> dict[str, tuple[str, int]]:
    """:func:`resolve_chain` of a message's answers and question name."""
    alias_of: dict[str, DnsRecord] = {}
    for record in answers:
        if record.rtype == "CNAME":
            alias_of.setdefault(record.value, record)
    mapping: dict[str, tuple[str, int]] = {}
    for record in answers:
        if record.rtype != "CNAME" and record.value not in mapping:
            mapping[record.value] = _walk_back(record, alias_of, qname)
    return mapping


def _walk_back(
    record: DnsRecord, alias_of: dict[str, DnsRecord], qname: str | None
) -> tuple[str, int]:
    name, ttl = record.name, record.ttl
    for _ in range(MAX_CHAIN_STEPS):
        if name == qname:
            break
        parent = alias_of.get(name)
        if parent is None:
            break
        name, ttl = parent.name, min(ttl, parent.ttl)
    return name, ttl


def _name_at(buf: bytes, off: int, seen: dict[int, tuple[str, int]]) -> tuple[str, int] | None:
    """``read_name(buf, off)``, reusing the names of this message already decoded (``seen``,
    by offset): a name that is one compression pointer to an earlier offset decodes to the
    name there, ending just past the pointer."""
    known = seen.get(off)
    if known is not None:
        return known
    if off + 1 < len(buf) and buf[off] >= 0xC0:
        pointer = ((buf[off] & 0x3F) << 8) | buf[off + 1]
        target = seen.get(pointer) if pointer < off else None
        if target is not None:
            known = seen[off] = (target[0], off + 2)
            return known
    decoded = read_name(buf, off)
    if decoded is not None:
        seen[off] = decoded
    return decoded


def _skip_name(buf: bytes, off: int) -> int:
    """Offset just past the (possibly compressed) name at ``off``, without decoding it; -1 if cut.

    Used to step over records of types that are not kept; kept ones are decoded by read_name.
    """
    while off < len(buf):
        length = buf[off]
        if length == 0:
            return off + 1
        if length >= 0xC0:
            return off + 2 if off + 2 <= len(buf) else -1
        if length > 63:
            return -1
        off += 1 + length
    return -1


def _read_answers(
    buf: bytes, off: int, count: int, seen: dict[int, tuple[str, int]]
) -> tuple[DnsRecord, ...]:
    """Read up to ``count`` answers; stop quietly at the first truncated or malformed one."""
    records: list[DnsRecord] = []
    size = len(buf)
    for _ in range(count):
        name_off, off = off, _skip_name(buf, off)
        if off < 0 or off + _RR_TAIL.size > size:
            break
        rtype, rclass, ttl, rdlen = _RR_TAIL.unpack_from(buf, off)
        off += _RR_TAIL.size
        if off + rdlen > size:
            break
        if rtype in _RTYPES and rclass & _CLASS_MASK == _IN:
            owner = _name_at(buf, name_off, seen)
            record = None
            if owner is not None:
                record = _make_record(buf, off, rdlen, owner[0], rtype, ttl, seen)
            if record is not None:
                records.append(record)
        off += rdlen
    return tuple(records)


def _make_record(
    buf: bytes,
    off: int,
    rdlen: int,
    owner: str,
    rtype: int,
    ttl: int,
    seen: dict[int, tuple[str, int]],
) -> DnsRecord | None:
    """Build a kept record from the rdata at ``buf[off : off + rdlen]``; None if invalid."""
    name = _normalized(owner)
    if name is None:
        return None
    if rtype == _CNAME:
        decoded = _name_at(buf, off, seen)
        target = _normalized(decoded[0]) if decoded is not None else None
        if target is None or decoded is None or decoded[1] > off + rdlen:
            return None
        return DnsRecord(name, "CNAME", target, ttl)
    family, size = _ADDR_LEN[rtype]
    if rdlen != size:
        return None
    return DnsRecord(name, _RTYPES[rtype], socket.inet_ntop(family, buf[off : off + size]), ttl)


class DnsParser(DeepParser):
    """DNS, mDNS and LLMNR messages: the question on the flow, the answers into the cache."""

    rank = 0  # a DNS port wins over any other port claim
    udp_ports = frozenset({53, 5353, 5355})
    tcp_ports = frozenset({53})

    def udp(self, ctx: Context, flow: Flow, is_orig: bool, data: bytes, ts: float) -> None:
        summary = _summary_py(data) if C_MESSAGE is None else C_MESSAGE(data)
        if summary is None:
            ctx.count("dns_unparsed")
        else:
            self._message(ctx, flow, is_orig, summary, ts)
        if MDNS_PORT in (flow.orig_p, flow.resp_p):  # what a device announces about itself
            observe_mdns(ctx, flow, is_orig, data)

    def tcp(self, ctx: Context, flow: Flow, is_orig: bool, buf: bytes, ts: float) -> Verdict:
        """2-byte length-prefixed messages; WAIT while one is incomplete."""
        off = 0
        while len(buf) >= off + 2:
            size = int.from_bytes(buf[off : off + 2], "big")
            if len(buf) < off + 2 + size:
                return Verdict.WAIT
            message = buf[off + 2 : off + 2 + size]
            summary = _summary_py(message) if C_MESSAGE is None else C_MESSAGE(message)
            if summary is not None:
                self._message(ctx, flow, is_orig, summary, ts)
            off += 2 + size
        return Verdict.MORE if off == len(buf) else Verdict.WAIT

    @staticmethod
    def _message(ctx: Context, flow: Flow, is_orig: bool, summary: _Summary, ts: float) -> None:
        ctx.count("dns")
        is_response, qname, questions, chain = summary
        if questions <= ZEEK_MAX_QUERIES:  # Zeek's analyzer rejects a message with more
            service(flow, "dns")
        if qname:
            flow.app_set("dns_query", qname)
        if is_response and chain:
            ctx.names.learn(flow.resp_h if is_orig else flow.orig_h, chain, ts)
