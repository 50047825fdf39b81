"""netwatch/_deep.c: the bounds its two DNS walks (dns_scan, dns_message) share through one
header reader: MAX_QUESTIONS questions still locate the answers (one more does not), at
most MAX_ANSWERS answer records are read, and the mDNS cache-flush bit leaves a record
class IN; each checked against the Python walk (dns._parse_py, dns._summary_py)."""

from __future__ import annotations

import struct

import pytest

from netwatch.deep import dns

deep = pytest.importorskip("netwatch._deep", reason="netwatch._deep is not built")

QNAME = b"\x03cam\x07example\x00"


def message(questions: int, answers: list[tuple[int, bytes]]) -> bytes:
    """A response with `questions` questions (the first cam.example, the others pointers to
    it) and A answers (class, address) owned by the first question's name."""
    head = struct.pack(">HHHHHH", 9, 0x8180, questions, len(answers), 0, 0)
    body = QNAME + b"\x00\x01\x00\x01" + b"\xc0\x0c\x00\x01\x00\x01" * (questions - 1)
    for klass, address in answers:
        body += b"\xc0\x0c" + struct.pack(">HHIH", 1, klass, 60, 4) + address
    return head + body


def scanned_addresses(payload: bytes) -> list[str]:
    """The addresses dns_scan keeps, after checking its walk against the Python one."""
    scanned = deep.dns_scan(payload)
    reference = dns._parse_py(payload)
    assert scanned is not None and reference is not None
    kept = [value for _owner, _rtype, value, _ttl in scanned[5]]
    assert kept == [record.value for record in reference[5]]
    return kept


def summary_chain(payload: bytes) -> list[tuple[bytes, str, int]]:
    """dns_message's chain, after checking it against the Python summary."""
    summary = deep.dns_message(payload)
    assert summary is not None
    assert summary == dns._summary_py(payload)
    chain: list[tuple[bytes, str, int]] = summary[3]
    return chain


@pytest.mark.parametrize("questions", [dns.MAX_QUESTIONS - 1, dns.MAX_QUESTIONS])
def test_answers_are_read_after_as_many_questions_as_the_bound(questions: int) -> None:
    payload = message(questions, [(1, b"\x01\x02\x03\x04")])
    assert scanned_addresses(payload) == ["1.2.3.4"]
    assert summary_chain(payload) == [(b"\x01\x02\x03\x04", "cam.example", 60)]


def test_no_answers_after_more_questions_than_the_bound() -> None:
    payload = message(dns.MAX_QUESTIONS + 1, [(1, b"\x01\x02\x03\x04")])
    assert scanned_addresses(payload) == []
    assert summary_chain(payload) == []
    assert deep.dns_message(payload)[2] == dns.MAX_QUESTIONS + 1  # QDCOUNT as given


def test_at_most_the_bound_of_answer_records_is_read() -> None:
    addresses = [bytes([10, 0, i // 256, i % 256]) for i in range(dns.MAX_ANSWERS + 3)]
    payload = message(1, [(1, address) for address in addresses])
    expected = addresses[: dns.MAX_ANSWERS]
    assert scanned_addresses(payload) == [".".join(map(str, a)) for a in expected]
    assert [packed for packed, _name, _ttl in summary_chain(payload)] == expected


def test_the_cache_flush_bit_keeps_class_in_and_other_classes_are_left() -> None:
    payload = message(1, [(0x8001, b"\x01\x01\x01\x01"), (3, b"\x02\x02\x02\x02")])
    assert scanned_addresses(payload) == ["1.1.1.1"]
    assert [packed for packed, _name, _ttl in summary_chain(payload)] == [b"\x01\x01\x01\x01"]


def test_a_payload_of_another_type_is_refused_by_name() -> None:
    with pytest.raises(TypeError, match=r"dns_scan\(\) takes bytes"):
        deep.dns_scan(bytearray(12))
    with pytest.raises(TypeError, match=r"dns_message\(\) takes bytes"):
        deep.dns_message("not bytes")
    assert deep.dns_scan(b"\x00" * 11) is None
    assert deep.dns_message(b"\x00" * 11) is None
