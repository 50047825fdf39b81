"""The DNS message walk as it was before its own name decoder: the reference for
``tests/deep/test_dns_differential.py``.

A verbatim copy of ``netwatch.deep.dns``'s ``parse_dns`` and its helpers at the commit
before ``read_name`` replaced ``dpkt.dns.unpack_name`` (and before a message's names were
reused by offset): every name through dpkt, none remembered. Kept only to prove the faster
parser gives identical results; not used by netwatch.
"""

from __future__ import annotations

import socket
import struct

import dpkt

from netwatch.deep.dns import (
    MAX_ANSWERS,
    MAX_QUESTIONS,
    DnsMessage,
    DnsRecord,
    normalize_name,
)

_HEADER = struct.Struct(">HHHHHH")
_QUESTION_TAIL = struct.Struct(">HH")
_RR_TAIL = struct.Struct(">HHIH")
_QR_BIT = 0x8000
_CLASS_MASK = 0x7FFF
_RTYPES = {dpkt.dns.DNS_A: "A", dpkt.dns.DNS_AAAA: "AAAA", dpkt.dns.DNS_CNAME: "CNAME"}
_ADDR_LEN = {dpkt.dns.DNS_A: (socket.AF_INET, 4), dpkt.dns.DNS_AAAA: (socket.AF_INET6, 16)}
NAME_ERRORS = (dpkt.Error, struct.error, UnicodeDecodeError, IndexError)


def parse_dns(payload: bytes) -> DnsMessage | None:
    """The previous ``netwatch.deep.dns.parse_dns``."""
    if len(payload) < _HEADER.size:
        return None
    txid, flags, qdcount, ancount, _ns, _ar = _HEADER.unpack_from(payload)
    qname: str | None = None
    qtype: int | None = None
    off = _HEADER.size
    for index in range(min(qdcount, MAX_QUESTIONS)):
        question = _read_question(payload, off)
        if question is None:
            return None
        name, rtype, off = question
        if index == 0:
            qname, qtype = normalize_name(name), rtype
    if qdcount > MAX_QUESTIONS:
        ancount = 0
    answers = _read_answers(payload, off, min(ancount, MAX_ANSWERS))
    return DnsMessage(
        txid=txid,
        is_response=bool(flags & _QR_BIT),
        qname=qname,
        qtype=qtype,
        rcode=flags & 0xF,
        answers=answers,
    )


def read_name(buf: bytes, off: int) -> tuple[str, int] | None:
    """``dpkt.dns.unpack_name``, None where it raises."""
    try:
        name, end = dpkt.dns.unpack_name(buf, off)
    except NAME_ERRORS:
        return None
    return str(name), int(end)


def _skip_name(buf: bytes, off: int) -> int:
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


def _read_question(buf: bytes, off: int) -> tuple[str, int, int] | None:
    decoded = read_name(buf, off)
    if decoded is None or decoded[1] + _QUESTION_TAIL.size > len(buf):
        return None
    name, off = decoded
    qtype, _qclass = _QUESTION_TAIL.unpack_from(buf, off)
    return name, qtype, off + _QUESTION_TAIL.size


def _read_answers(buf: bytes, off: int, count: int) -> tuple[DnsRecord, ...]:
    records: list[DnsRecord] = []
    for _ in range(count):
        name_off, off = off, _skip_name(buf, off)
        if off < 0 or off + _RR_TAIL.size > len(buf):
            break
        rtype, rclass, ttl, rdlen = _RR_TAIL.unpack_from(buf, off)
        off += _RR_TAIL.size
        if off + rdlen > len(buf):
            break
        if rtype in _RTYPES and rclass & _CLASS_MASK == dpkt.dns.DNS_IN:
            owner = read_name(buf, name_off)
            record = None
            if owner is not None:
                record = _make_record(buf, off, rdlen, owner=owner[0], rtype=rtype, ttl=ttl)
            if record is not None:
                records.append(record)
        off += rdlen
    return tuple(records)


def _make_record(
    buf: bytes, off: int, rdlen: int, *, owner: str, rtype: int, ttl: int
) -> DnsRecord | None:
    name = normalize_name(owner)
    if name is None:
        return None
    if rtype == dpkt.dns.DNS_CNAME:
        decoded = read_name(buf, off)
        target = normalize_name(decoded[0]) if decoded is not None else None
        if target is None or decoded is None or decoded[1] > off + rdlen:
            return None
        return DnsRecord(name, "CNAME", target, ttl)
    family, size = _ADDR_LEN[rtype]
    if rdlen != size:
        return None
    return DnsRecord(name, _RTYPES[rtype], socket.inet_ntop(family, buf[off : off + size]), ttl)
