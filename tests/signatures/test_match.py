"""The matchers over the real seeds: names, ports, payloads, MAC prefixes, banners, discovery."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import dpkt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netwatch.signatures import SignatureMatcher, Signatures, match
from netwatch.signatures.match import SCAN_LIMIT_BYTES, _anchored_first, _BannerField, _Conditions
from netwatch.signatures.model import Fingerprint, PayloadSignature
from tests.deep.test_dns import l4_payloads
from tests.profile import examples

SIGS = Signatures.load()
MATCHER = SignatureMatcher(SIGS)
SIG_PORTS = frozenset(p for s in SIGS.payloads for p in s.ports)


def invert(data: bytes) -> bytes:
    return bytes(0xFF - b for b in data)


def stun_binding_request(attributes: bytes = b"") -> bytes:
    """An RFC 5389 binding request: type 0x0001, length, magic cookie, 12-byte transaction id."""
    header = struct.pack("!HHI", 0x0001, len(attributes), 0x2112A442) + bytes(range(1, 13))
    return header + attributes


def tplink_encrypt(plain: bytes) -> bytes:
    """TP-Link Smart Home XOR autokey (initial key 171), as nDPI describes it."""
    key, out = 171, bytearray()
    for b in plain:
        key = b ^ key
        out.append(key)
    return bytes(out)


DHIP_HEADER = struct.pack("<I4sIIIIII", 0x20, b"DHIP", 0, 1, 10, 0, 10, 0)
EZVIZ_CAS = bytes.fromhex("9EBAACE9 01000000") + bytes(24)
SADP_REPLY = (
    b'<?xml version="1.0" encoding="UTF-8"?><ProbeMatch><Uuid>1</Uuid><Types>inquiry</Types>'
    b"<DeviceType>139</DeviceType><HCPlatformEnable>true</HCPlatformEnable></ProbeMatch>"
)
TPLINK_JSON = tplink_encrypt(b'{"system":{"get_sysinfo":{}}}')

# signature id -> (proto, server port, direction, payload), hand-built from signatures.md
PAYLOADS: dict[str, tuple[str, int, str, bytes]] = {
    "hik-ehome-register": (
        "udp",
        7660,
        "client",
        b'<?xml version="1.0" encoding="GB2312"?><PPVSPMessage><Version>4.0</Version>'
        b"<Sequence>1</Sequence><CommandType>REQUEST</CommandType><Method>REGISTER</Method>"
        b"<Command>REGISTER</Command><Params><SerialNumber>DS-2CD2042WD</SerialNumber>"
        b"<NetUnitType>PU</NetUnitType><LocalPort>7660</LocalPort></Params></PPVSPMessage>",
    ),
    "hik-isup-keepalive": ("udp", 7660, "client", b"\x10\x03\x13"),
    "ezviz-cas": ("tcp", 6500, "client", EZVIZ_CAS),
    "ezviz-lan-sdk": ("tcp", 9010, "client", EZVIZ_CAS),  # the port-specific entry wins
    "ezviz-mqtt-connect": ("tcp", 31006, "client", b"\x10\x2a\x00\x04MQTT\x04\xc2\x00\x3c"),
    "ezviz-xml-stun": ("udp", 31007, "client", b"<Request><Type>stun</Type></Request>"),
    "ezviz-backupserver-upload": (
        "tcp",
        8080,
        "client",
        b"POST /sdk.post HTTP/1.1\r\nHost: backupserver:8080\r\n\r\n"
        b"filename=a&code=hikencodepicture",
    ),
    "hik-sdk-error-reply-1e": (
        "tcp",
        8000,
        "server",
        bytes.fromhex("00000010 0000001E 0000001E 00000000"),
    ),
    "hik-sdk-error-reply-0d": (
        "tcp",
        8000,
        "server",
        bytes.fromhex("00000010 0000000D 0000000D 00000000"),
    ),
    "hik-sadp-cloud-enabled": ("udp", 37020, "server", SADP_REPLY),
    "hik-sadp-set-hc-platform": (
        "udp",
        37020,
        "client",
        b"<Probe><Uuid>2</Uuid><Types>SetHCPlatform</Types>"
        b"<HCPlatformEnable>true</HCPlatformEnable><Password>x</Password></Probe>",
    ),
    "dahua-p2p-dhget": ("udp", 8800, "client", b"DHGET /probe/p2psrv HTTP/1.1\r\nCSeq: 1\r\n\r\n"),
    "dahua-p2p-dhpost": (
        "udp",
        8800,
        "client",
        b"DHPOST /online/relay HTTP/1.1\r\nCSeq: 2\r\n\r\n",
    ),
    "dahua-ptcp": ("udp", 41234, "client", b"PTCP" + bytes(24) + b"\x00\x00\x00\x00"),
    "dahua-inverted-stun-lpi": ("udp", 8800, "client", invert(stun_binding_request(bytes(24)))),
    "dahua-inverted-stun": ("udp", 40000, "server", invert(stun_binding_request())),
    "dahua-dhip": ("tcp", 5000, "client", DHIP_HEADER + b'{"method":"global.login"}'),
    "dahua-dvrip-request": ("tcp", 37777, "client", b"\xa0\x01" + bytes(30)),
    "dahua-dvrip-reply": ("tcp", 37777, "server", b"\xb0\x01" + bytes(30)),
    "dahua-dvrip-json": ("tcp", 37777, "client", b"\xf6\x00" + bytes(30) + b'{"method":"x"}'),
    "dahua-tcp-lpi-request": ("tcp", 8888, "client", b"\xf4\x00\x00\x00" + bytes(182)),
    "dahua-tcp-lpi-reply": ("tcp", 8888, "server", b"\xf4\x00\x00\x58" + bytes(202)),
    "xm-dss-register": (
        "tcp",
        80,
        "client",
        b"POST / HTTP/1.1\r\nHost: access-dss.secu100.net\r\n\r\n"
        b'{"DssProtocol":{"Header":{"MessageType":"MSG_DEV_REGISTER_REQ"}}}',
    ),
    "xm-cfg-query": (
        "tcp",
        8086,
        "client",
        b"POST / HTTP/1.1\r\nHost: pub-cfg.secu100.net:8086\r\nUser-Agent: XAPP\r\n\r\n"
        b'{"CfgProtocol":{"Header":{"MessageType":"MSG_PMS_CFG_QUERY_REQ"}},"Body":{}}',
    ),
    "xm-agent-register": (
        "tcp",
        80,
        "client",
        b'{"AgentProtocol":{"Header":{"MessageType":"MSG_AGENT_REGISTER_REQ"}},'
        b'"Body":{"DevicePort":"34567"}}',
    ),
    "xm-caps-report": (
        "tcp",
        80,
        "client",
        b"POST /dev/upload HTTP/1.1\r\n\r\n"
        b'{"CapsCenter":{"MessageType":"REPORT_CAPS_DEV_INFO_REQ"}}',
    ),
    "xm-firmware-check": (
        "tcp",
        80,
        "client",
        b"POST /list HTTP/1.1\r\nHost: 120.92.92.241\r\n\r\n"
        b'{"UUID":"a","DevID":"b","DevType":"IPC","CurVersion":"2019","Expect":"Latest"}',
    ),
    "xm-dvrip-request": (
        "tcp",
        34567,
        "client",
        struct.pack("<BB2xII2xHI", 0xFF, 0, 0, 0, 1000, 2) + b"{}",
    ),
    "xm-dvrip-reply": (
        "tcp",
        34567,
        "server",
        struct.pack("<BB2xII2xHI", 0xFF, 1, 7, 0, 1001, 2) + b"{}",
    ),
    "xm-umeye-handshake": ("udp", 50000, "client", b"\xc1\xef\xab\xff" + bytes(160)),
    "tuya-lan": ("udp", 6667, "server", b"\x00\x00\x55\xaa\x00\x00\x00\x10" + bytes(16)),
    "tplink-shp-udp": ("udp", 9999, "client", TPLINK_JSON),
    "tplink-shp-tcp": ("tcp", 9999, "client", struct.pack("!I", len(TPLINK_JSON)) + TPLINK_JSON),
    "stun-rfc5389": ("udp", 3478, "client", stun_binding_request()),
    "upnp-add-port-mapping": (
        "tcp",
        5431,
        "client",
        b"POST /ctl/IPConn HTTP/1.1\r\nHost: 192.168.1.1:5431\r\nContent-Type: text/xml\r\n"
        b'SOAPAction: "urn:schemas-upnp-org:service:WANIPConnection:1#AddPortMapping"\r\n\r\n'
        b"<s:Envelope><s:Body><u:AddPortMapping><NewExternalPort>8000</NewExternalPort>",
    ),
    "ssdp-search-igd": (
        "udp",
        1900,
        "client",
        b'M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: "ssdp:discover"\r\n'
        b"MX: 2\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n\r\n",
    ),
    "natpmp-map": ("udp", 5351, "client", struct.pack("!BBHHHI", 0, 2, 0, 8000, 8000, 3600)),
    "natpmp-external-address": ("udp", 5351, "client", b"\x00\x00"),
    "pcp-map": ("udp", 5351, "client", b"\x02\x01\x00\x00" + bytes(56)),
    "pcp-peer": ("udp", 5351, "client", b"\x02\x02\x00\x00" + bytes(76)),
    # a Mi Home device's miIO hello to the cloud: header, 0xff filler, device id and stamp
    "xiaomi-miio-cloud-hello": (
        "udp",
        80,
        "client",
        bytes.fromhex("21310020" + "ff" * 8 + "64d25700f2949556") + bytes(16),
    ),
    # the Mi IoT server lookup's request line (the headers may be cut by the snap length)
    "xiaomi-gslb-request": (
        "tcp",
        80,
        "client",
        b"GET /gslb?tver=2&id=123456789&dm=ots.io.mi.com&timestamp=9&sign=abc HTTP/1.1\r\n",
    ),
}


def test_every_payload_signature_has_a_hand_built_case() -> None:
    assert set(PAYLOADS) == {s.id for s in SIGS.payloads}


@pytest.mark.parametrize("sig_id", sorted(PAYLOADS))
def test_hand_built_payload_matches_its_signature(sig_id: str) -> None:
    proto, port, direction, payload = PAYLOADS[sig_id]
    hit = MATCHER.match_payload(proto, port, payload, direction)
    assert hit is not None
    assert hit.id == sig_id


def test_inverted_stun_is_not_standard_stun_and_back() -> None:
    request = stun_binding_request()
    hit = MATCHER.match_payload("udp", 3478, request, "client")
    assert hit is not None
    assert hit.id == "stun-rfc5389"
    hit = MATCHER.match_payload("udp", 3478, invert(request), "client")
    assert hit is not None
    assert hit.id == "dahua-inverted-stun"
    assert invert(request)[:8] == bytes.fromhex("FFFEFFFF DEED5BBD")


@pytest.mark.parametrize(
    ("proto", "port", "direction", "payload"),
    [
        ("udp", 8800, "server", b"DHGET /probe/p2psrv HTTP/1.1\r\n"),  # wrong direction
        ("tcp", 8800, "client", b"DHGET /probe/p2psrv HTTP/1.1\r\n"),  # wrong transport
        ("tcp", 80, "client", b"\xa0\x01" + bytes(30)),  # DVRIP bytes off its port
        ("udp", 37020, "server", SADP_REPLY.replace(b"true", b"flase")),  # the "flase" value
        ("udp", 8800, "client", b""),
        ("udp", 8800, "sideways", b"DHGET / HTTP/1.1\r\n"),
        ("icmp", 8800, "client", b"DHGET / HTTP/1.1\r\n"),
        # a server lookup of another maker, and a Xiaomi-looking name not at its end
        ("tcp", 80, "client", b"GET /gslb?id=1&dm=api.example.com HTTP/1.1\r\n"),
        ("tcp", 80, "client", b"GET /gslb?dm=ots.io.mi.com.evil.example HTTP/1.1\r\n"),
    ],
)
def test_no_match(proto: str, port: int, direction: str, payload: bytes) -> None:
    assert MATCHER.match_payload(proto, port, payload, direction) is None


def test_case_of_proto_is_ignored() -> None:
    hit = MATCHER.match_payload("UDP", 8800, b"DHGET / HTTP/1.1\r\n", "client")
    assert hit is not None
    assert hit.id == "dahua-p2p-dhget"


def test_substrings_and_regexes_only_scan_the_first_bytes() -> None:
    _, port, direction, body = PAYLOADS["upnp-add-port-mapping"]
    near = b"X" * (SCAN_LIMIT_BYTES - len(body)) + body
    far = b"X" * SCAN_LIMIT_BYTES + body
    assert MATCHER.match_payload("tcp", port, near, direction) is not None
    assert MATCHER.match_payload("tcp", port, far, direction) is None
    wide = SignatureMatcher(SIGS, scan_limit=2 * SCAN_LIMIT_BYTES)
    assert wide.match_payload("tcp", port, far, direction) is not None


@settings(max_examples=examples(400), deadline=None, derandomize=True)
@given(
    payload=st.binary(max_size=512),
    proto=st.sampled_from(["tcp", "udp"]),
    direction=st.sampled_from(["client", "server"]),
    port=st.integers(1, 65535).filter(lambda p: p not in SIG_PORTS),
)
def test_random_bytes_do_not_match(payload: bytes, proto: str, direction: str, port: int) -> None:
    assert MATCHER.match_payload(proto, port, payload, direction) is None


@settings(max_examples=examples(300), deadline=None, derandomize=True)
@given(
    payload=st.binary(max_size=64),
    proto=st.sampled_from(["tcp", "udp", "sctp", ""]),
    direction=st.sampled_from(["client", "server", "any", ""]),
    port=st.sampled_from(sorted(SIG_PORTS | {0, 65535})),
)
def test_match_payload_never_raises(payload: bytes, proto: str, direction: str, port: int) -> None:
    MATCHER.match_payload(proto, port, payload, direction)


# ---------------------------------------------------------------- names and ports


@pytest.mark.parametrize(
    ("name", "endpoint"),
    [
        ("litedev.hik-connect.com", "hik-connect-litedev"),
        ("LITEDEV.Hik-Connect.com.", "hik-connect-litedev"),
        ("dev.hik-connect.com", "hik-connect-dev"),
        ("x.y.hik-connect.com.", "hik-connect-domain"),
        ("X.Y.HIK-CONNECT.COM.", "hik-connect-domain"),
        ("apiieu.hik-connect.com", "hik-connect-domain"),
        ("hik-connect.com", "hik-connect-domain"),
        ("www.easy4ipcloud.com", "dahua-easy4ip-p2p"),
        ("iotaccess.easy4ipcloud.com", "dahua-iotaccess"),
        ("cmgw-sg.easy4ipcloud.com", "imou-hls"),
        ("p2p.eu.easy4ipcloud.com", "easy4ipcloud-domain"),
        ("easy4ipcloud.com", "easy4ipcloud-domain"),
        ("www.easy4ip.com", "dahua-p2p-alt"),
        ("pub-cfg.secu100.net", "xm-pub-cfg"),
        ("new-host.secu100.net", "secu100-domain"),
        ("m1.tuyaeu.com", "tuya-mqtt"),
        ("backupserver", "ezviz-backupserver"),
    ],
)
def test_match_name(name: str, endpoint: str) -> None:
    hit = MATCHER.match_name(name)
    assert hit is not None
    assert hit.id == endpoint


@pytest.mark.parametrize(
    "name",
    [
        "",
        ".",
        "com",
        "evilhik-connect.com",  # a suffix only matches at a label boundary
        "hik-connect.com.evil.example",
        "tuyaeu.com",  # only the documented m1 hosts
        "example.org",
        "a" * 300 + ".hik-connect.com",
    ],
)
def test_match_name_misses(name: str) -> None:
    assert MATCHER.match_name(name) is None


def test_endpoints_for_port() -> None:
    dahua = MATCHER.endpoints_for_port("udp", 8800)
    assert [e.id for e in dahua][:2] == ["dahua-easy4ip-p2p", "dahua-p2p-alt"]  # high first
    assert "ezviz-db1-seen-ports" in {e.id for e in dahua}
    assert MATCHER.endpoints_for_port("UDP", 8800) == dahua
    assert {e.id for e in MATCHER.endpoints_for_port("tcp", 8666)} >= {
        "hik-connect-litedev",
        "ezviz-litedev",
    }
    assert MATCHER.endpoints_for_port("tcp", 443) == ()  # generic: never an indicator alone
    assert MATCHER.endpoints_for_port("tcp", 1) == ()


# ---------------------------------------------------------------- MAC prefixes


def test_vendor_of_mac() -> None:
    hik = MATCHER.vendor_of_mac(bytes.fromhex("bcad28123456"))
    assert hik is not None
    assert (hik.oui, hik.vendor, hik.camera_vendor) == ("BC:AD:28", "Hikvision", True)
    assert hik.registrant == "Hangzhou Hikvision Digital Technology Co.,Ltd."
    dahua = MATCHER.vendor_of_mac(bytes.fromhex("b44c3b000001"))
    assert dahua is not None
    assert (dahua.vendor, dahua.camera_vendor, dahua.confidence) == ("Dahua", True, "high")
    imou = MATCHER.vendor_of_mac(bytes.fromhex("906a94000001"))
    assert imou is not None
    assert (imou.vendor, imou.confidence) == ("Dahua", "guess")
    ezviz = MATCHER.vendor_of_mac(bytes.fromhex("588fcf000001"))
    assert ezviz is not None
    assert (ezviz.vendor, ezviz.registrant) == ("Hikvision", "Hangzhou Ezviz Software Co.,Ltd.")


def test_vendor_of_mac_general_covered_vendor_and_misses() -> None:
    huawei = next(o for o in SIGS.ouis if o.vendor == "Huawei")
    hit = MATCHER.vendor_of_mac(huawei.prefix + b"\x00\x00\x01")
    assert hit is not None
    assert hit.camera_vendor is False
    assert MATCHER.vendor_of_mac(bytes(6)) is None
    assert MATCHER.vendor_of_mac(b"\xbc\xad") is None


# ---------------------------------------------------------------- banners


@pytest.mark.parametrize(
    ("field", "value", "fingerprint"),
    [
        ("http_server", "App-webs/", "hik-app-webs"),
        ("http_server", "DNVRS-Webs", "hik-dnvrs-webs"),
        ("http_server", "Webs", "hik-webs"),
        ("http_server", " uc-httpd 1.0.0 ", "xm-uc-httpd"),
        ("http_server", "H264DVR 1.0", "xm-h264dvr-http"),
        ("rtsp_server", "Dahua Rtsp Server", "dahua-rtsp-server"),
        ("rtsp_server", "H264DVR rtspd 1.0", "xm-h264dvr-rtsp"),
        ("rtsp_server", "HiIpcam/V100R003 VodServer/1.0.0", "hisilicon-hiipcam"),
        (
            "www_authenticate",
            'Digest realm="Hikvision", nonce="0123456789abcdef0123456789abcdef", stale="FALSE"',
            "hik-realm",
        ),
        ("user_agent", "XAPP", "xm-xapp-agent"),
    ],
)
def test_match_banner(field: str, value: str, fingerprint: str) -> None:
    hit = MATCHER.match_banner(field, value)
    assert hit is not None
    assert hit.id == fingerprint


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("http_server", "Apache/2.4.41"),
        ("http_server", "Webserver 2"),  # exact match only
        ("http_server", "app-webs/"),  # case-sensitive
        ("rtsp_server", "App-webs/"),  # another field
        ("server", "App-webs/"),  # unknown field
        ("http_server", ""),
    ],
)
def test_match_banner_misses(field: str, value: str) -> None:
    assert MATCHER.match_banner(field, value) is None


def test_banner_regexes_compile_when_a_value_first_reaches_them() -> None:
    # Built at start without compiling; exact/prefix/contains answer first, so an unusable
    # regex (seed files are checked at read) only fails when a value falls through to it.
    bad = Fingerprint(id="b", vendor="V", field="http_server", match="regex", value="(",
                      source="s", confidence="low")  # fmt: skip
    exact = Fingerprint(id="e", vendor="V", field="http_server", match="exact", value="Cam",
                        source="s", confidence="low")  # fmt: skip
    banner = _BannerField([bad, exact])
    hit = banner.match("Cam")
    assert hit is not None and hit.id == "e"
    with pytest.raises(ValueError, match="bad regex"):
        banner.match("Other")
    good = Fingerprint(id="g", vendor="V", field="http_server", match="regex", value="^Cam/\\d",
                       source="s", confidence="low")  # fmt: skip
    found = _BannerField([good]).match("Cam/2")
    assert found is not None and found.id == "g"


# ---------------------------------------------------------------- discovery


@pytest.mark.parametrize(
    ("port", "payload", "protocol", "message"),
    [
        (
            37020,
            b'<?xml version="1.0" encoding="utf-8"?>'
            b"<Probe><Uuid>A</Uuid><Types>inquiry</Types></Probe>",
            "hik-sadp-v2",
            "probe",
        ),
        (37020, SADP_REPLY, "hik-sadp-v2", "probe-match"),
        (
            37810,
            DHIP_HEADER + b'{"method":"DHDiscover.search","params":{"mac":"","uni":1}}',
            "dahua-dhip-discovery",
            "search",
        ),
        (
            37810,
            DHIP_HEADER + b'{"mac":"b4:4c:3b:00:00:01","method":"client.notifyDevInfo"}',
            "dahua-dhip-discovery",
            "reply",
        ),
        (
            5050,
            b"\xa3\x01\x00\x01" + bytes(12) + b"\x02\x00\x00\x00",
            "dahua-legacy-discovery",
            "search",
        ),
        (5050, b"\xb3\x00" + bytes(118), "dahua-legacy-discovery", "reply"),
        (34569, struct.pack("<BB2xII2xHI", 0xFF, 0, 0, 0, 1530, 0), "xm-discovery", "search"),
        (
            34569,
            struct.pack("<BB2xII2xHI", 0xFF, 1, 0, 0, 1531, 2) + b"{}",
            "xm-discovery",
            "reply",
        ),
        (
            3702,
            b"<s:Envelope><s:Body><d:ProbeMatches><d:ProbeMatch><d:Types>dn:NetworkVideoTransmitter"
            b"</d:Types></d:ProbeMatch></d:ProbeMatches></s:Body></s:Envelope>",
            "onvif-ws-discovery",
            "probe-match",
        ),
        (
            3702,
            b"<s:Envelope><s:Body><d:Probe><d:Types>dn:NetworkVideoTransmitter</d:Types>"
            b"</d:Probe></s:Body></s:Envelope>",
            "onvif-ws-discovery",
            "probe",
        ),
        (
            1900,
            PAYLOADS["ssdp-search-igd"][3],
            "ssdp-igd-search",
            "m-search-igd",
        ),
    ],
)
def test_match_discovery(port: int, payload: bytes, protocol: str, message: str) -> None:
    hit = MATCHER.match_discovery(port, payload)
    assert hit is not None
    assert (hit[0].id, hit[1].message) == (protocol, message)


def test_match_discovery_misses_and_layer2() -> None:
    assert MATCHER.match_discovery(37020, b"random") is None
    assert (
        MATCHER.match_discovery(3702, b"<d:Probe><d:Types>dn:Printer</d:Types></d:Probe>") is None
    )
    assert MATCHER.match_discovery(53, b"<ProbeMatch>") is None
    hit = MATCHER.match_ethertype(0x8033, b"\x21\x02" + bytes(36))
    assert hit is not None
    assert (hit[0].id, hit[0].broadcast) == ("hik-sadp-v1", True)
    assert MATCHER.match_ethertype(0x8033, b"\x22\x02") is None
    assert MATCHER.match_ethertype(0x0800, b"\x21") is None


# ---------------------------------------------------------------- the payload prefilters


def linear_match(
    matcher: SignatureMatcher, proto: str, port: int, payload: bytes, direction: str
) -> PayloadSignature | None:
    """``match_payload`` without its prefilters: every candidate of the table, in order."""
    if not payload:
        return None
    key = (proto.lower(), direction)
    scan = matcher._payload_port.get((*key, port)) or matcher._payload_any.get(key)
    for sig, cond in scan.candidates if scan is not None else ():
        if cond.hit(payload, matcher.scan_limit):
            return sig
    return None


def _pieces(sig: PayloadSignature) -> list[tuple[int | None, bytes]]:
    """(offset or None for anywhere, bytes) that make up a payload near ``sig``."""
    pieces: list[tuple[int | None, bytes]] = []
    for m in sig.match:
        if m.hex is not None and m.offset is not None:
            pieces.append((m.offset, m.hex))
        elif m.contains is not None:
            pieces.append((None, m.contains))
    return pieces


_SIG_LIST = sorted(SIGS.payloads, key=lambda s: s.id)
_PORTS = sorted(SIG_PORTS | {0, 53, 80, 443, 554, 3478, 8800})


@st.composite
def _near_signatures(draw: st.DrawFn) -> bytes:
    """Random bytes carrying some of the offset values and substrings of a few signatures,
    or a hand-built case cut or bit-flipped: payloads that pass some checks and fail others."""
    if draw(st.booleans()):
        payload = bytearray(PAYLOADS[draw(st.sampled_from(sorted(PAYLOADS)))][3])
        for _ in range(draw(st.integers(0, 3))):
            at = draw(st.integers(0, len(payload) - 1))
            payload[at] ^= 1 << draw(st.integers(0, 7))
        return bytes(payload[: draw(st.integers(1, len(payload)))])
    payload = bytearray(draw(st.binary(min_size=1, max_size=96)))
    for sig in draw(st.lists(st.sampled_from(_SIG_LIST), min_size=1, max_size=3)):
        for off, value in _pieces(sig):
            if not draw(st.integers(0, 4)):
                continue  # leave this condition unmet
            at = draw(st.integers(0, len(payload))) if off is None else off
            if len(payload) < at:
                payload.extend(bytes(at - len(payload)))
            payload[at : at + len(value)] = value
    return bytes(payload)


@settings(max_examples=examples(3000), deadline=None)
@given(_near_signatures(), st.sampled_from(["tcp", "udp"]), st.sampled_from(["client", "server"]))
def test_prefilters_change_no_answer(payload: bytes, proto: str, direction: str) -> None:
    for port in _PORTS:
        found = MATCHER.match_payload(proto, port, payload, direction)
        assert found == linear_match(MATCHER, proto, port, payload, direction)


#: The compiled row scan (None when netwatch._deep is not built or switched off).
FIRST = match._FIRST


@pytest.fixture
def python_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    """``match_payload`` on its Python prefilters (what runs without the compiled part)."""
    monkeypatch.setattr(match, "_FIRST", None)


@pytest.mark.usefixtures("python_scan")
@settings(max_examples=examples(1500), deadline=None)
@given(_near_signatures(), st.sampled_from(["tcp", "udp"]), st.sampled_from(["client", "server"]))
def test_python_prefilters_change_no_answer(payload: bytes, proto: str, direction: str) -> None:
    for port in _PORTS:
        found = MATCHER.match_payload(proto, port, payload, direction)
        assert found == linear_match(MATCHER, proto, port, payload, direction)


@pytest.mark.usefixtures("python_scan")
def test_python_prefilters_on_the_hand_built_cases() -> None:
    for proto, _, direction, payload in PAYLOADS.values():
        for port in _PORTS:
            found = MATCHER.match_payload(proto, port, payload, direction)
            assert found == linear_match(MATCHER, proto, port, payload, direction)


def test_the_lookup_tables_are_remembered_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    matcher = SignatureMatcher(SIGS)
    stun = stun_binding_request()
    assert matcher.match_payload("UDP", 3478, stun, "client") is not None
    assert matcher.match_payload("udp", 3478, stun, "client") is not None
    assert matcher._scans[("UDP", "client", 3478)] is matcher._scans[("udp", "client", 3478)]
    monkeypatch.setattr(match, "_MEMO_MAX", 3)
    for port in range(10):
        matcher.match_payload("tcp", port, b"x", "server")
        assert len(matcher._scans) <= 3
    assert matcher.match_payload("udp", 3478, stun, "client") is not None


_FIXED = st.tuples(st.integers(0, 12), st.binary(max_size=4))
_MASKED = st.tuples(st.integers(0, 12), st.integers(0, 3), st.integers(0, 1 << 40), st.binary())


@st.composite
def _some_conditions(draw: st.DrawFn) -> _Conditions:
    """Offset checks (plain, masked: masks wider than the value too), substrings; no regex."""
    masked = []
    for off, size, mask, want in draw(st.lists(_MASKED, max_size=2)):
        wanted = int.from_bytes(want[:size].rjust(size, b"\0")) & mask & ((1 << 8 * size) - 1)
        if draw(st.booleans()):
            wanted |= draw(st.integers(0, (1 << 8 * size) - 1))  # bits the mask may not cover
        masked.append((off, size, mask, wanted))
    fixed = tuple(draw(st.lists(_FIXED, max_size=2)))
    needles = tuple(draw(st.lists(st.binary(max_size=3), max_size=2)))
    return _Conditions(fixed, tuple(masked), needles, ())


@pytest.mark.skipif(FIRST is None, reason="netwatch._deep not built or switched off")
@settings(max_examples=examples(3000), deadline=None)
@given(
    st.lists(_some_conditions(), min_size=1, max_size=4),
    st.binary(max_size=16),
    st.integers(0, 18),
    st.integers(0, 5),
)
def test_compiled_scan_is_conditions_hit(
    conds: list[_Conditions], payload: bytes, limit: int, start: int
) -> None:
    assert FIRST is not None
    want = next((i for i in range(start, len(conds)) if conds[i].hit(payload, limit)), -1)
    specs = tuple(c.spec() for c in conds)
    assert FIRST(payload, limit, specs, start) == want
    assert FIRST(bytearray(payload), limit, specs, start) == want
    assert FIRST(memoryview(payload), limit, specs, start) == want


@pytest.mark.skipif(FIRST is None, reason="netwatch._deep not built or switched off")
def test_compiled_scan_edges() -> None:
    assert FIRST is not None

    def first(payload: bytes, cond: _Conditions, limit: int = 2048) -> bool:
        assert FIRST is not None
        hit = FIRST(payload, limit, (cond.spec(),), 0) == 0
        assert hit == cond.hit(payload, limit)
        return hit

    # startswith(b"", offset): only up to the end
    assert first(b"abc", _Conditions(((3, b""),), (), (), ()))
    assert not first(b"abc", _Conditions(((4, b""),), (), (), ()))
    assert first(b"abc", _Conditions(((1, b"bc"),), (), (), ()))
    assert not first(b"abc", _Conditions(((2, b"cd"),), (), (), ()))
    # a masked check of no bytes holds anywhere; a cut chunk never does
    assert first(b"abc", _Conditions((), ((9, 0, 0xFF, 0),), (), ()))
    assert not first(b"abc", _Conditions((), ((2, 2, 0, 0),), (), ()))
    assert first(b"abc", _Conditions((), ((1, 2, 0xFFFF_F0F0, 0x6060),), (), ()))
    assert not first(b"abc", _Conditions((), ((1, 1, 0xF0, 0x61),), (), ()))  # bit outside
    # substrings: in the window only; an empty one is always there
    assert first(b"abcdef", _Conditions((), (), (b"ef",), ()), 6)
    assert not first(b"abcdef", _Conditions((), (), (b"ef",), ()), 5)
    assert first(b"abcdef", _Conditions((), (), (b"",), ()), 0)
    assert not first(b"abcdef", _Conditions((), (), (b"a",), ()), 0)
    assert first(b"aab", _Conditions((), (), (b"ab",), ()))  # a false start first
    assert FIRST(b"abc", 2048, (), 0) == -1
    assert FIRST(b"abc", 2048, (((), (), ()),), 5) == -1


@pytest.mark.skipif(FIRST is None, reason="netwatch._deep not built or switched off")
@pytest.mark.parametrize(
    ("specs", "error"),
    [
        ([], TypeError),  # not a tuple
        (((), ()), TypeError),  # a condition of two parts
        ((((1, b"x"), (), ()),), TypeError),  # fixed not a tuple of pairs
        (((((b"x", b"x"),), (), ()),), TypeError),  # an offset not an int
        (((((-1, b"x"),), (), ()),), ValueError),
        (((((1 << 70, b"x"),), (), ()),), OverflowError),
        ((((), ((0, b"\xff", b""),), ()),), TypeError),  # mask and value of two lengths
        ((((), ((-2, b"\xff", b"\x01"),), ()),), ValueError),
        ((((), (), ("x",)),), TypeError),  # a str substring
    ],
)
def test_compiled_scan_rejects_malformed_conditions(specs: object, error: type) -> None:
    assert FIRST is not None
    with pytest.raises(error):
        FIRST(b"abc", 2048, specs, 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        FIRST(b"abc", 2048, (), -1)
    with pytest.raises(TypeError):
        FIRST("abc", 2048, (), 0)  # type: ignore[arg-type]


def test_prefilters_change_no_answer_on_the_hand_built_cases() -> None:
    hits = 0
    for proto, _, direction, payload in PAYLOADS.values():
        for port in _PORTS:
            found = MATCHER.match_payload(proto, port, payload, direction)
            assert found == linear_match(MATCHER, proto, port, payload, direction)
            hits += found is not None
    assert hits > len(PAYLOADS) * 5


def test_prefilters_change_no_answer_on_real_captures(pcap_corpus: Path) -> None:
    checked = 0
    for path in sorted(p for p in pcap_corpus.rglob("*.pcap*") if p.is_file()):
        try:
            for seg in l4_payloads(path):
                for port, direction in ((seg.dport, "client"), (seg.sport, "server")):
                    found = MATCHER.match_payload(seg.proto, port, seg.payload, direction)
                    want = linear_match(MATCHER, seg.proto, port, seg.payload, direction)
                    assert found == want, (path.name, port, direction)
                    checked += 1
        except dpkt.NeedData:
            continue
    assert checked > 100_000


# ---------------------------------------------------------------- anchored regexes


@pytest.mark.parametrize(
    ("pattern", "first"),
    [
        (rb"^GET /gslb\?", ord("G")),
        (rb"\APOST /list ", ord("P")),
        (rb"^G+ET", ord("G")),
        (rb"^<xml", ord("<")),
        (rb"^G*ET", None),  # G may be absent
        (rb"^G?ET", None),
        (rb"^G{0,2}ET", None),
        (rb"^GET|POST", None),  # POST anywhere
        (rb"\A(?:GET|POST)", None),
        (rb"(?i)^get", None),  # g or G
        (rb"(?m)^GET", None),  # after any newline
        (rb"(?x)^ GET", None),
        (rb"^\x16\x03", None),  # an escape: not read
        (rb"^.GET", None),
        (rb"^[GP]ET", None),
        (rb"^(GET)", None),
        (rb"GET", None),
        (rb"\\AGET", None),  # a backslash, then AGET anywhere
        (rb"^", None),
    ],
)
def test_anchored_first_byte(pattern: bytes, first: int | None) -> None:
    compiled = re.compile(pattern)
    assert _anchored_first(compiled) == first
    for flag in (re.IGNORECASE, re.MULTILINE, re.VERBOSE):  # passed to compile, not inline
        assert _anchored_first(re.compile(pattern, flag)) is None
    assert _anchored_first(re.compile(pattern, re.DOTALL)) == first
    if first is not None:  # no payload starting with another byte matches
        for byte in range(256):
            if byte != first:
                assert compiled.search(bytes((byte,)) + pattern.lstrip(b"^\\A+")) is None


def _conditions(sig: PayloadSignature) -> _Conditions:
    return _Conditions.of(sig.match)


_SEED_REGEXES = sorted(
    {p.pattern: p for s in SIGS.payloads for p in _conditions(s).patterns}.values(),
    key=lambda p: p.pattern,
)


def test_some_seed_regexes_are_anchored() -> None:
    anchored = {p.pattern for p in _SEED_REGEXES if _anchored_first(p) is not None}
    assert rb"\APOST /list " in anchored and len(anchored) >= 3


@settings(max_examples=examples(2000), deadline=None)
@given(st.sampled_from(_SEED_REGEXES), st.binary(max_size=80), st.integers(0, 255))
def test_an_anchored_seed_regex_needs_its_first_byte(
    pattern: re.Pattern[bytes], tail: bytes, byte: int
) -> None:
    """Payloads carrying the regex's own text after some first byte: the regex matches only
    when that byte is the one ``_anchored_first`` names."""
    first = _anchored_first(pattern)
    body = re.sub(rb"\\.|[\^\[\](){}*+?.$|]", b"", pattern.pattern)
    for payload in (
        bytes((byte,)) + tail,
        bytes((byte,)) + body + tail,
        bytes((byte,)) + body[1:] + tail,
    ):
        if first is not None and payload[0] != first:
            assert pattern.search(payload, 0, SCAN_LIMIT_BYTES) is None


def test_rows_without_a_gate_substring_keep_only_plain_candidates() -> None:
    """The TLS ClientHello row on 443: the anchored GET/POST regexes are not in it, and with
    none of the substrings present only the candidates needing none are tried."""
    scan = (
        MATCHER._payload_port.get(("tcp", "client", 443)) or MATCHER._payload_any[("tcp", "client")]
    )
    row = scan.by_first[0x16]
    assert all(_anchored_first(p) is None for _, c in row.full for p in c.patterns)
    assert row.gate and all(not c.needles for _, c in row.plain)
    assert {c.key_needle() for _, c in row.full} - {None} == set(row.gate)
    ids = {byte: {sig.id for sig, _ in scan.by_first[byte].full} for byte in b"\x16GP"}
    assert "xiaomi-gslb-request" in ids[ord("G")] - ids[0x16] - ids[ord("P")]
    assert "xm-firmware-check" in ids[ord("P")] - ids[0x16] - ids[ord("G")]


def test_substrings_ending_at_the_scan_limit() -> None:
    """Each substring-only signature with its substrings ending at the last byte of the
    window, and one byte later: the prefilter agrees with the plain scan either way."""
    checked = 0
    for sig in _SIG_LIST:
        cond = _conditions(sig)
        if cond.fixed or cond.masked or cond.patterns or not cond.needles:
            continue
        for proto in ("tcp", "udp") if sig.transport == "any" else (sig.transport,):
            for direction in ("client", "server") if sig.direction == "any" else (sig.direction,):
                port = sig.ports[0] if sig.ports else 80
                for shift in (0, 1):
                    tail = b" ".join(cond.needles)
                    payload = b"X" * (SCAN_LIMIT_BYTES - len(tail) + shift) + tail
                    found = MATCHER.match_payload(proto, port, payload, direction)
                    assert found == linear_match(MATCHER, proto, port, payload, direction)
                    assert (found is not None) == (shift == 0), sig.id
                    checked += 1
    assert checked >= 10
