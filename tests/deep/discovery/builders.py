"""Hand-built discovery messages following the formats documented in signatures.md §2.

Shared by the discovery tests; every builder returns the transport payload.
"""

from __future__ import annotations

import json
import socket
import struct

SADP_PROBE = (
    b'<?xml version="1.0" encoding="utf-8"?><Probe><Uuid>7A1C2B3D-0000-4E5F-8000-112233445566'
    b"</Uuid><Types>inquiry</Types></Probe>"
)


def sadp_probe_match(**fields: str) -> bytes:
    """An SADP ``ProbeMatch`` with realistic defaults; a value of '' drops the element."""
    values = {
        "Uuid": "11223344-5566-7788-9900-112233445566",
        "Types": "inquiry",
        "DeviceType": "139960",
        "DeviceDescription": "DS-2CD2043G0-I",
        "DeviceSN": "DS-2CD2043G0-I20190101AAWRC12345678",
        "CommandPort": "8000",
        "HttpPort": "80",
        "MAC": "44-19-b6-12-34-56",
        "IPv4Address": "192.168.1.64",
        "IPv4SubnetMask": "255.255.255.0",
        "IPv6Address": "::",
        "DHCP": "false",
        "SoftwareVersion": "V5.6.3build 190923",
        "Activated": "true",
        "SupportHCPlatform": "true",
        "HCPlatformEnable": "true",
        "OEMInfo": "N/A",
    } | fields
    body = "".join(f"<{key}>{value}</{key}>" for key, value in values.items() if value)
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<ProbeMatch>{body}</ProbeMatch>\n'.encode()


def dhip(body: object, *, declared: int | None = None) -> bytes:
    """DHIP: 32-byte header (``20 00 00 00`` ``DHIP`` session request len 0 len 0) + JSON."""
    data = (json.dumps(body) + "\r\n").encode() if not isinstance(body, bytes) else body
    length = len(data) if declared is None else declared
    return struct.pack("<I4sIIIIII", 0x20, b"DHIP", 0, 0, length, 0, length, 0) + data


DHIP_SEARCH = {"method": "DHDiscover.search", "params": {"mac": "", "uni": 1}}


def dhip_notify(**info: object) -> dict[str, object]:
    """A ``client.notifyDevInfo`` reply body shaped like the idx 69173564975 example."""
    device_info: dict[str, object] = {
        "DeviceClass": "IPC",
        "DeviceType": "IPC-HDW1230S",
        "HttpPort": 80,
        "IPv4Address": {
            "DhcpEnable": True,
            "IPAddress": "192.168.1.108",
            "SubnetMask": "255.255.255.0",
        },
        "Manufacturer": "Dahua",
        "SerialNo": "4J01234PAZ12345",
        "Vendor": "Dahua",
        "Version": "2.800.0000000.28.R",
    } | info
    return {
        "mac": "b4:4c:3b:f4:e3:01",
        "method": "client.notifyDevInfo",
        "params": {"deviceInfo": device_info},
    }


def dahua_5050_probe(last: int = 1) -> bytes:
    """Legacy search: ``A3 01 00 0<last>`` + 12 zero bytes + ``02 00 00 00`` + 12 zero bytes."""
    return bytes([0xA3, 0x01, 0x00, last]) + bytes(12) + b"\x02\x00\x00\x00" + bytes(12)


def dahua_5050_reply(
    device_type: bytes = b"IPC-HFW4300S", ip: str = "192.168.1.108",
    mac: bytes = b"3c:ef:8c:01:02:03", model: bytes = b"IPC-HFW4300SP",
) -> bytes:  # fmt: skip
    """Legacy reply: ``B3 00``, section length at byte 2, type at 0x28, IP at 0x38, MAC, model."""
    section = mac + model
    struct_ = bytearray(120)
    struct_[0:4] = bytes([0xB3, 0x00, len(section), 0x02])
    struct_[4] = 0x58
    struct_[16] = 0x02
    struct_[0x28 : 0x28 + len(device_type)] = device_type
    struct_[0x38:0x3C] = socket.inet_aton(ip)
    return bytes(struct_) + section


def xiongmai(message_id: int, body: bytes = b"", *, version: int = 0) -> bytes:
    """DVRIP header ``<BB2xII2xHI`` (head FF, version, session, seq, msg id, length) + body."""
    return struct.pack("<BB2xII2xHI", 0xFF, version, 0, 0, message_id, len(body)) + body


def xiongmai_reply(**common: object) -> bytes:
    """Search reply (msg 1531): ``{"NetWork.NetCommon": {...}, "Ret": 100}`` ending ``0A 00``."""
    net_common: dict[str, object] = {
        "ChannelNum": 1,
        "DeviceType": 1,
        "GateWay": "0x0101A8C0",
        "HostIP": "0x6401A8C0",
        "HostName": "LocalHost",
        "HttpPort": 80,
        "MAC": "00:12:31:08:bb:97",
        "SN": "41e6853ada5e9323",
        "TCPPort": 34567,
        "UDPPort": 34568,
    } | common
    body = json.dumps({"NetWork.NetCommon": net_common, "Ret": 100, "SessionID": "0x00000000"})
    return xiongmai(1531, body.encode() + b"\n\x00", version=1)


_ENVELOPE = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://www.w3.org/2003/05/soap-envelope" '
    'xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
    'xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery" '
    'xmlns:dn="http://www.onvif.org/ver10/network/wsdl" '
    'xmlns:tds="http://www.onvif.org/ver10/device/wsdl">'
    "<SOAP-ENV:Header><wsa:MessageID>urn:uuid:1</wsa:MessageID>"
    "<wsa:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/{action}</wsa:Action>"
    "</SOAP-ENV:Header><SOAP-ENV:Body>{body}</SOAP-ENV:Body></SOAP-ENV:Envelope>"
)


def wsd_probe(types: str = "dn:NetworkVideoTransmitter") -> bytes:
    """A client's WS-Discovery ``Probe`` for ``types``."""
    body = f"<d:Probe><d:Types>{types}</d:Types></d:Probe>"
    return _ENVELOPE.format(action="Probe", body=body).encode()


CAMERA_SCOPES = (
    "onvif://www.onvif.org/type/video_encoder onvif://www.onvif.org/Profile/Streaming "
    "onvif://www.onvif.org/hardware/DS-2CD2143G0-I onvif://www.onvif.org/name/HIKVISION "
    "onvif://www.onvif.org/MAC/44-19-b6-ab-cd-ef onvif://www.onvif.org/location/city/hangzhou"
)


def wsd_probe_matches(
    types: str = "dn:NetworkVideoTransmitter tds:Device",
    scopes: str = CAMERA_SCOPES,
    xaddrs: str = "http://192.168.1.64/onvif/device_service http://[fe80::1]/onvif/device_service",
    kind: str = "ProbeMatches",
) -> bytes:
    """A device's ``ProbeMatches`` (or ``kind``: Hello, ResolveMatches) with one match."""
    inner = (
        "<wsa:EndpointReference><wsa:Address>urn:uuid:abcd</wsa:Address></wsa:EndpointReference>"
        f"<d:Types>{types}</d:Types><d:Scopes>{scopes}</d:Scopes><d:XAddrs>{xaddrs}</d:XAddrs>"
        "<d:MetadataVersion>1</d:MetadataVersion>"
    )
    match = inner if kind == "Hello" else f"<d:{kind[:-2]}>{inner}</d:{kind[:-2]}>"
    return _ENVELOPE.format(action=kind, body=f"<d:{kind}>{match}</d:{kind}>").encode()
