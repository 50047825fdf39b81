"""Tests for netwatch.deep.discovery (the dispatcher): routing by port, never raising."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netwatch.decode.walk import L2_HOOK_ETHERTYPES
from netwatch.deep.discovery import (
    BUILTIN_DISCOVERY,
    DISCOVERY_PORTS,
    DeviceIdentity,
    parse_discovery,
)
from netwatch.deep.discovery.sadp import SADP_ETHERTYPE
from netwatch.deep.ssdp import SSDP_PORT
from netwatch.signatures import loader
from netwatch.signatures.lan import discovery_seed
from netwatch.signatures.model import DISCOVERY_FILE, load_discovery
from tests.deep.discovery.builders import (
    SADP_PROBE,
    dahua_5050_reply,
    dhip,
    dhip_notify,
    sadp_probe_match,
    wsd_probe_matches,
    xiongmai_reply,
)
from tests.profile import examples


@pytest.mark.parametrize(
    ("port", "payload", "protocol"),
    [
        (37020, sadp_probe_match(), "sadp"),
        (37810, dhip(dhip_notify()), "dhip"),
        (5050, dahua_5050_reply(), "dahua_5050"),
        (34569, xiongmai_reply(), "xiongmai"),
        (3702, wsd_probe_matches(), "onvif"),
    ],
)
def test_routes_replies_by_destination_or_source_port(
    port: int, payload: bytes, protocol: str
) -> None:
    to_port = parse_discovery("udp", 50000, port, payload)
    from_port = parse_discovery("UDP", port, 50000, payload)
    assert to_port is not None
    assert to_port == from_port
    assert (to_port.protocol, to_port.is_reply, to_port.is_camera) == (protocol, True, True)


def test_destination_parser_first_then_source() -> None:
    identity = parse_discovery("udp", 37020, 3702, SADP_PROBE)  # not WS-Discovery: try SADP
    assert identity is not None
    assert identity.protocol == "sadp"
    onvif = parse_discovery("udp", 37020, 3702, wsd_probe_matches())
    assert onvif is not None
    assert onvif.protocol == "onvif"


@pytest.mark.parametrize(
    ("proto", "sport", "dport", "payload"),
    [
        ("tcp", 50000, 37020, sadp_probe_match()),
        ("udp", 50000, 53, sadp_probe_match()),
        ("udp", 50000, 37810, sadp_probe_match()),
        ("udp", 37020, 37020, b""),
    ],
)
def test_no_identity(proto: str, sport: int, dport: int, payload: bytes) -> None:
    assert parse_discovery(proto, sport, dport, payload) is None


def test_every_documented_port_is_routed() -> None:
    assert sorted(DISCOVERY_PORTS) == [3702, 5050, 20002, 34569, 37020, 37810, 54321, 62976]


@settings(max_examples=examples(500), deadline=None)
@given(st.binary(max_size=300), st.sampled_from(sorted(DISCOVERY_PORTS)), st.integers(0, 65535))
def test_random_payloads_on_every_port_never_raise(data: bytes, port: int, other: int) -> None:
    for sport, dport in ((other, port), (port, other)):
        result = parse_discovery("udp", sport, dport, data)
        assert result is None or isinstance(result, DeviceIdentity)


def test_the_seed_file_is_where_every_discovery_port_is_written() -> None:
    """``seeds/discovery_protocols.yaml`` drives the code: every UDP discovery protocol and
    the SSDP parser read their port from a seed entry, every UDP entry is read by one, and
    the layer-2 SADP EtherType the decoder hands over is the seed's."""
    entries = load_discovery(loader.default_seeds_dir() / DISCOVERY_FILE)
    seeded_udp = {port for e in entries if e.transport == "udp" for port in e.ports}
    routed = {proto.port for proto in BUILTIN_DISCOVERY} | {SSDP_PORT}
    assert routed == seeded_udp
    assert discovery_seed("hik-sadp-v1").ethertype == SADP_ETHERTYPE
    assert SADP_ETHERTYPE in L2_HOOK_ETHERTYPES
