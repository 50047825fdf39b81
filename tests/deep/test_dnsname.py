"""Tests for netwatch.deep.dnsname: hand-built names, and ``read_name`` against dpkt's
``unpack_name`` on every offset of the real captures' DNS messages and on generated hostile
buffers (pointer chains, loops and forward pointers, long, cut and non-UTF-8 labels).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netwatch.deep.dnsname import read_name
from tests.deep import dns_reference as reference
from tests.deep.test_dns_differential import _BUFFERS, captured
from tests.profile import examples

__all__ = ["captured"]  # the module fixture, shared


@pytest.mark.parametrize(
    ("buf", "off", "want"),
    [
        (b"\x03cam\x07example\x00", 0, ("cam.example", 13)),
        (b"\x00", 0, ("", 1)),
        (b"\x03cam\x00\x02hq\xc0\x00", 5, ("hq.cam", 10)),  # ends past the pointer
        (b"\x03cam\x00\xc0\x00\xc0\x05", 7, ("cam", 9)),  # a chain of two pointers
        (b"\xc0\x00", 0, None),  # points at itself
        (b"\x00\xc0\x03\x03cam\x00", 1, None),  # points forwards
        (b"\x03ca", 0, None),  # cut inside a label
        (b"\x03cam", 0, None),  # no final label
        (b"\xc0", 0, None),  # cut inside a pointer
        (b"\x40" + b"x" * 64 + b"\x00", 0, None),  # label length 64: reserved
        (b"\x02\xc3\xa9\x00", 0, ("\u00e9", 4)),
        (b"\x01\xff\x00", 0, None),  # not UTF-8
        (b"", 0, None),
    ],
)
def test_hand_built_names(buf: bytes, off: int, want: tuple[str, int] | None) -> None:
    assert read_name(buf, off) == want
    assert reference.read_name(buf, off) == want  # and dpkt agrees


def test_every_offset_of_the_captured_dns_decodes_as_dpkt_does(
    captured: list[tuple[bool, bytes]],
) -> None:
    decoded = 0
    for is_dns, payload in captured:
        if not is_dns:
            continue
        for off in range(12, min(len(payload), 600)):
            mine = read_name(payload, off)
            assert mine == reference.read_name(payload, off), (payload.hex(), off)
            decoded += mine is not None
    assert decoded > 10_000


@settings(max_examples=examples(3000), deadline=None)
@given(_BUFFERS, st.integers(0, 40))
def test_generated_names_decode_as_dpkt_does(buf: bytes, off: int) -> None:
    assert read_name(buf, off) == reference.read_name(buf, off)


@pytest.mark.parametrize("last", [60, 61, 62, 63])
@pytest.mark.parametrize("via_pointer", [False, True])
def test_the_255_byte_cap_is_dpkts(last: int, via_pointer: bool) -> None:
    # three 63-byte labels and one of ``last`` bytes: 252 + 1 + last bytes of labels
    labels = b"".join(bytes([n]) + b"x" * n for n in (63, 63, 63, last)) + b"\x00"
    buf = labels + b"\xc0\x00" if via_pointer else labels
    off = len(labels) if via_pointer else 0
    assert read_name(buf, off) == reference.read_name(buf, off)
    assert (read_name(buf, off) is None) is (last > 62)


@settings(max_examples=examples(2000), deadline=None)
@given(st.binary(max_size=300), st.integers(0, 300))
def test_random_bytes_decode_as_dpkt_does(buf: bytes, off: int) -> None:
    assert read_name(buf, off) == reference.read_name(buf, off)
