"""Tests for netwatch.deep.snmp: the BER header of v1, v2c and v3 messages."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from netwatch.deep.base import Verdict
from netwatch.deep.snmp import SnmpParser, snmp_version
from tests.deep.lanctx import Recorder, udp_flow
from tests.profile import examples


def message(version: int, rest: bytes) -> bytes:
    body = b"\x02\x01" + bytes((version,)) + rest
    return b"\x30" + bytes((len(body),)) + body


GET_V2C = message(1, b"\x04\x06public" + b"\xa0\x0c\x02\x01\x01\x02\x01\x00\x02\x01\x00\x30\x00")
V3 = message(3, b"\x30\x0d\x02\x01\x01\x02\x02\x05\xdc\x04\x01\x04\x02\x01\x03")


def test_versions() -> None:
    assert snmp_version(GET_V2C) == "v2c"
    assert snmp_version(message(0, b"\x04\x06public\xa0\x00")) == "v1"
    assert snmp_version(V3) == "v3"


def test_not_snmp() -> None:
    assert snmp_version(GET_V2C[:-1]) is None  # the outer length disagrees
    assert snmp_version(message(2, b"\x04\x06public\xa0\x00")) is None  # no version 2
    assert snmp_version(message(3, b"\x04\x06public\xa0\x00")) is None  # v3 has no community
    assert snmp_version(b"\x30\x84\xff\xff\xff\xff\x02\x01\x00") is None


def test_parser_names_snmp() -> None:
    flow = udp_flow(b"\x0a\x00\x00\x01", 40000, b"\x0a\x00\x00\x02", 161)
    assert SnmpParser().udp(Recorder(), flow, True, GET_V2C, 0.0) is Verdict.DONE
    assert flow.app is not None
    assert (flow.app["service"], flow.app["snmp_version"]) == (["snmp"], "v2c")


@settings(max_examples=examples(1000), deadline=None)
@given(st.binary(max_size=60))
def test_hostile_bytes_never_raise(data: bytes) -> None:
    snmp_version(b"\x30" + data)
    snmp_version(data)
