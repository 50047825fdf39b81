"""Tests for netwatch.deep.discovery.onvif: WS-Discovery probes, matches, a real capture."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netwatch.capture.files import open_capture
from netwatch.decode.frames import Decoder
from netwatch.deep.discovery.identity import MAX_PAYLOAD_BYTES, DeviceIdentity
from netwatch.deep.discovery.onvif import parse_onvif
from tests.conftest import corpus_file
from tests.deep.discovery.builders import wsd_probe, wsd_probe_matches
from tests.deep.test_dns import mutate
from tests.profile import examples


def test_camera_probe_matches() -> None:
    identity = parse_onvif(wsd_probe_matches())
    assert identity is not None
    assert (identity.protocol, identity.vendor, identity.model) == (
        "onvif",
        "HIKVISION",
        "DS-2CD2143G0-I",
    )
    assert (identity.mac, identity.ip) == ("44:19:b6:ab:cd:ef", "192.168.1.64")
    assert identity.device_type == "NetworkVideoTransmitter Device"
    assert (identity.firmware, identity.serial, identity.cloud_enabled) == (None, None, None)
    assert (identity.is_camera, identity.is_reply) == (True, True)
    evidence = dict(identity.raw_fields)
    assert evidence["kind"] == "ProbeMatches"
    assert evidence["Action"].endswith("/discovery/ProbeMatches")
    assert evidence["Address"] == "urn:uuid:abcd"
    scopes = [value for key, value in identity.raw_fields if key == "Scope"]
    assert "onvif://www.onvif.org/location/city/hangzhou" in scopes


@pytest.mark.parametrize("types", ["NetworkVideoTransmitter", "tdn:NetworkVideoTransmitter x:y"])
def test_camera_type_under_any_prefix(types: str) -> None:
    identity = parse_onvif(wsd_probe_matches(types=types))
    assert identity is not None
    assert identity.is_camera


def test_client_probe_for_cameras_is_not_a_camera() -> None:
    identity = parse_onvif(wsd_probe())
    assert identity is not None
    assert (identity.is_reply, identity.is_camera, identity.device_type) == (False, False, None)
    assert ("Types", "dn:NetworkVideoTransmitter") in identity.raw_fields


def test_non_camera_device_reply() -> None:
    identity = parse_onvif(
        wsd_probe_matches(types="wsdp:Device pub:Computer", scopes="", xaddrs="urn:uuid:x")
    )
    assert identity is not None
    assert (identity.is_reply, identity.is_camera) == (True, False)
    assert (identity.vendor, identity.model, identity.mac, identity.ip) == (None,) * 4


@pytest.mark.parametrize(("kind", "reply"), [("Hello", True), ("ResolveMatches", True)])
def test_announcements_and_resolve_matches(kind: str, reply: bool) -> None:
    identity = parse_onvif(wsd_probe_matches(kind=kind))
    assert identity is not None
    assert (identity.is_reply, identity.is_camera) == (reply, True)
    assert ("kind", kind) in identity.raw_fields


def test_bye_without_types_is_a_reply_but_not_a_camera() -> None:
    bye = wsd_probe()
    bye = bye.replace(b"<d:Probe><d:Types>dn:NetworkVideoTransmitter</d:Types></d:Probe>", b"")
    bye_body = b"<d:Bye><wsa:EndpointReference><wsa:Address>urn:x</wsa:Address>"
    bye = bye.replace(
        b"</SOAP-ENV:Body>", bye_body + b"</wsa:EndpointReference></d:Bye></SOAP-ENV:Body>"
    )
    identity = parse_onvif(bye)
    assert identity is not None
    assert (identity.is_reply, identity.is_camera) == (True, False)


def test_percent_encoded_unicode_scopes_and_ipv6_xaddr() -> None:
    scopes = (
        "onvif://www.onvif.org/name/%E5%A4%A7%E5%8D%8E%20Dahua "
        "ONVIF://www.onvif.org/Hardware/IPC-HDW&amp;1230 onvif://www.onvif.org/mac/3cef8c001122"
    )
    identity = parse_onvif(
        wsd_probe_matches(scopes=scopes, xaddrs="http://[bad http://[2001:db8::5]:8080/onvif")
    )
    assert identity is not None
    assert (identity.vendor, identity.model) == ("大华 Dahua", "IPC-HDW&1230")
    assert (identity.mac, identity.ip) == ("3c:ef:8c:00:11:22", "2001:db8::5")


def test_universal_scanner_shape_with_empty_scopes() -> None:
    identity = parse_onvif(
        wsd_probe_matches(
            types="Virtual tds:Device", scopes="", xaddrs="http://127.0.01/ http://[::1]/"
        )
    )
    assert identity is not None
    assert (identity.is_camera, identity.ip, identity.device_type) == (
        False,
        "::1",
        "Virtual Device",
    )


def test_dtd_refused_and_oversized_input_capped() -> None:
    laughs = b'<!DOCTYPE e [<!ENTITY a "aaaa">]>' + wsd_probe_matches()
    assert parse_onvif(laughs) is None
    padded = b"<!-- " + b"x" * MAX_PAYLOAD_BYTES + b" -->" + wsd_probe_matches()
    assert parse_onvif(padded) is None  # the message starts beyond 64 KiB
    tail = wsd_probe_matches() + b"<d:Scopes>" + b"y" * 2_000_000 + b"</d:Scopes>"
    identity = parse_onvif(tail)
    assert identity is not None
    assert identity.is_camera


@pytest.mark.parametrize(
    "payload", [b"", b"<soap:Envelope><soap:Body><Other/></soap:Body></soap:Envelope>", b"Probe"]
)
def test_not_ws_discovery_is_none(payload: bytes) -> None:
    assert parse_onvif(payload) is None


def test_windows_resolve_capture_is_neither_camera_nor_reply() -> None:
    path = corpus_file("pcaps", "protocols", "ndpi_ws-discovery_3702.pcap")
    decoder = Decoder()
    results: list[DeviceIdentity | None] = []
    with open_capture(path) as capture:
        for ts, linktype, wirelen, frame in capture.packets():
            decoded = decoder.decode(linktype, frame, wirelen, ts)
            if decoded is None or 3702 not in (decoded[3], decoded[4]):
                continue
            offset, length = decoded[10], decoded[11]
            results.append(parse_onvif(decoded[12][offset : offset + length]))
    assert len(results) == 14
    for identity in results:
        assert identity is not None
        assert (identity.is_camera, identity.is_reply, identity.vendor) == (False, False, None)
        assert ("kind", "Resolve") in identity.raw_fields


# ---- properties --------------------------------------------------------------------------


@settings(max_examples=examples(400), deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_never_raise(data: bytes) -> None:
    envelope = b"<s:Envelope><s:Body><d:ProbeMatches>"
    for payload in (data, envelope + data, envelope + b"<d:Types>" + data):
        result = parse_onvif(payload)
        assert result is None or isinstance(result, DeviceIdentity)


@settings(max_examples=examples(400), deadline=None)
@given(st.binary(max_size=12), st.sampled_from([wsd_probe_matches(), wsd_probe()]))
def test_truncated_or_bit_flipped_messages_never_raise(noise: bytes, message: bytes) -> None:
    result = parse_onvif(mutate(message, noise))
    assert result is None or isinstance(result, DeviceIdentity)
