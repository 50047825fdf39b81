"""The consumer-camera seeds (issue 10): each cloud entry resolves by name or port, and the
consumer-camera banners (TP-Link Streamd and realm, D-Link DCS) name their vendor."""

from __future__ import annotations

import pytest

from netwatch.pipeline import banner_vendor_of
from netwatch.signatures import SignatureMatcher, Signatures

SIGS = Signatures.load()
MATCHER = SignatureMatcher(SIGS)
BANNER_VENDOR = banner_vendor_of(MATCHER)
WYZE_KINESIS = "c1ybkrkbr1j10x.credentials.iot.us-west-2.amazonaws.com"


# ---------------------------------------------------------------- cloud names


@pytest.mark.parametrize(
    ("name", "endpoint", "vendor"),
    [
        # V380: the hosts a camera uses at boot, the SDK's servers, the two domains
        ("alivetype.av380.net", "v380-device-cloud", "V380"),
        ("DEVOTA.av380.net.", "v380-device-cloud", "V380"),
        ("ak802.av380.net", "v380-device-cloud", "V380"),
        ("ipc1300.av380.net", "v380-device-cloud", "V380"),
        ("ipc79.w390.net", "v380-w390-relay", "V380"),
        ("ipc12.w390.net", "v380-w390-relay", "V380"),
        ("vri2.av380.net", "v380-sdk-servers", "V380"),
        ("is583.nvcam.net", "v380-sdk-servers", "V380"),
        ("regipc4379.av380.net", "v380-domains", "V380"),
        ("logreport.nvcam.net", "v380-domains", "V380"),
        ("av380.net", "v380-domains", "V380"),
        # Imou (Dahua): the open platform's regional hosts and the China domain
        ("openapi-sg.easy4ip.com", "imou-open-platform", "Dahua"),
        ("openapi.imoulife.com", "imou-open-platform", "Dahua"),
        ("openapi.lechange.cn", "imou-open-platform", "Dahua"),
        ("funcopenapi.lechange.cn", "lechange-cn-domain", "Dahua"),
        # Ring, Yi, Wyze, Zmodo
        ("oauth.ring.com", "ring-api", "Amazon"),
        ("app.ring.com", "ring-api", "Amazon"),
        ("api.eu.xiaoyi.com", "yi-cloud-regions", "Yi"),
        ("log.xiaoyi.com.tw", "yi-cloud-regions", "Yi"),
        (WYZE_KINESIS, "wyze-kinesis-credentials", "Wyze"),
        ("register.zmodo.com", "zmodo-register", "Zmodo"),
    ],
)
def test_consumer_cloud_names(name: str, endpoint: str, vendor: str) -> None:
    hit = MATCHER.match_name(name)
    assert hit is not None
    assert (hit.id, hit.vendor) == (endpoint, vendor)


@pytest.mark.parametrize(
    "name",
    [
        "ring.com",  # the shop, not a device endpoint
        "www.ring.com",
        "xiaoyi.com.tw",  # only the documented .tw hosts
        "credentials.iot.us-west-2.amazonaws.com",  # a shared cloud's name is never listed
        "other.credentials.iot.us-west-2.amazonaws.com",
        "zmodo.com",
        "w390.net",  # the suffix matches below the domain only
        "notav380.net",
    ],
)
def test_consumer_cloud_names_miss(name: str) -> None:
    assert MATCHER.match_name(name) is None


def test_every_exact_name_resolves_to_its_own_entry() -> None:
    """No name is shadowed: an exact name wins over every suffix, in every entry."""
    for ep in SIGS.endpoints:
        for name in ep.names:
            hit = MATCHER.match_name(name)
            assert hit is not None and hit.id == ep.id, (name, ep.id)


# ---------------------------------------------------------------- cloud ports


@pytest.mark.parametrize(
    ("proto", "port", "endpoint", "confidence"),
    [
        ("tcp", 8557, "ring-device-ports", "med"),
        ("tcp", 9998, "ring-device-ports", "med"),
        ("udp", 15064, "ring-device-ports", "med"),
        ("udp", 8877, "v380-device-cloud", "med"),
        ("udp", 7788, "v380-w390-relay", "low"),  # low: the rule never uses it alone
        ("tcp", 8088, "zmodo-register", "low"),
    ],
)
def test_consumer_cloud_ports(proto: str, port: int, endpoint: str, confidence: str) -> None:
    found = {e.id: e.confidence for e in MATCHER.endpoints_for_port(proto, port)}
    assert found.get(endpoint) == confidence


def test_ring_tcp_9999_is_not_reolink_udp_9999() -> None:
    assert {e.id for e in MATCHER.endpoints_for_port("tcp", 9999)} == {"ring-device-ports"}
    assert "ring-device-ports" not in {e.id for e in MATCHER.endpoints_for_port("udp", 9999)}


# ---------------------------------------------------------------- banners


@pytest.mark.parametrize(
    ("field", "value", "fingerprint", "vendor"),
    [
        ("http_server", "Streamd", "tplink-streamd", "TP-Link"),
        (
            "www_authenticate",
            'Digest realm="TP-Link IP-Camera",algorithm="MD5",encrypt_type="3",qop="auth",'
            'nonce="09939140a84cc97b2a27579bb823b2e1",opaque="64943214654649846565646421"',
            "tplink-ipcamera-realm",
            "TP-Link",
        ),
        (
            "www_authenticate",
            'Digest realm="TP-LINK IP-Camera", nonce="abc"',
            "tplink-ipcamera-realm",
            "TP-Link",
        ),
        ("http_server", "dcs-lig-httpd", "dlink-dcs-lig-httpd", "D-Link"),
        ("www_authenticate", 'Basic realm="DCS-930L"', "dlink-dcs-realm", "D-Link"),
        ("www_authenticate", 'Digest realm="DCS-8000LH", nonce="1"', "dlink-dcs-realm", "D-Link"),
    ],
)
def test_consumer_camera_banners(field: str, value: str, fingerprint: str, vendor: str) -> None:
    hit = MATCHER.match_banner(field, value)
    assert hit is not None
    assert (hit.id, hit.vendor, hit.strength) == (fingerprint, vendor, "camera")
    assert BANNER_VENDOR(field, value) == vendor  # the pipeline's banner lookup


@pytest.mark.parametrize(
    ("field", "value"),
    [
        # TP-Link and D-Link also make routers: their realms must not make a camera
        ("www_authenticate", 'Basic realm="TP-LINK Wireless N Router WR841N"'),
        ("www_authenticate", 'Basic realm="TP-LINK Archer C6"'),
        ("www_authenticate", 'Basic realm="TP-LINK"'),
        ("www_authenticate", 'Basic realm="DIR-615"'),
        ("www_authenticate", 'Basic realm="DSP-W215"'),  # the D-Link plug
        ("http_server", "Streamd/2.0"),  # exact match only
        ("http_server", "streamd"),  # case-sensitive
        ("rtsp_server", "Streamd"),  # another field
    ],
)
def test_consumer_camera_banner_misses(field: str, value: str) -> None:
    assert MATCHER.match_banner(field, value) is None
    assert BANNER_VENDOR(field, value) is None
