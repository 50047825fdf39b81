"""Tests for netwatch.deep.ssdp: NOTIFY / M-SEARCH replies name devices, M-SEARCH does not."""

from __future__ import annotations

import socket

from hypothesis import given, settings
from hypothesis import strategies as st

from netwatch.deep.ssdp import SsdpParser, parse_ssdp
from netwatch.flow.inspect import Inspector
from netwatch.signatures.match import SignatureMatcher
from netwatch.signatures.model import PayloadSignature
from tests.deep.lanctx import Recorder, udp_flow
from tests.profile import examples

CAM = socket.inet_aton("10.10.10.37")
GROUP = socket.inet_aton("239.255.255.250")

NOTIFY = (
    b"NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nCACHE-CONTROL: max-age=1800\r\n"
    b"LOCATION: https://10.10.10.37/HNAP1/\r\nNT: upnp:rootdevice\r\nNTS: ssdp:alive\r\n"
    b"SERVER: Linux,    UPnP/1.0 DCS-935L/1.0\r\nUSN: uuid:abc::upnp:rootdevice\r\n\r\n"
)  # as sent by the DCS-935L in sentinel_dlink-dcs935l_setup-A2.pcap
IGD_SEARCH = (
    b'M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: "ssdp:discover"\r\nMX: 3\r\n'
    b"ST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n\r\n"
)
EDIMAX_REPLY = (
    b"HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=1800\r\nEXT:\r\n"
    b"LOCATION: http://10.10.10.51:80/IPCamDesc.xml\r\nSERVER: Embedded UPnP/1.0\r\n"
    b"ST: upnp:rootdevice\r\nUSN: uuid:x::upnp:rootdevice\r\n\r\n"
)


def test_notify_headers_are_read() -> None:
    msg = parse_ssdp(NOTIFY)
    assert msg is not None and msg.kind == "notify"
    assert dict(msg.headers)["server"] == "Linux,    UPnP/1.0 DCS-935L/1.0"
    assert dict(msg.headers)["location"] == "https://10.10.10.37/HNAP1/"


def test_a_camera_notify_names_the_sender_with_the_model() -> None:
    ctx = Recorder()
    SsdpParser().udp(ctx, udp_flow(CAM, 1900, GROUP, 1900), True, NOTIFY, 0)
    assert [(h, v, how) for h, v, how, _ in ctx.seen] == [
        (CAM, "D-Link", "ssdp_server:dlink-dcs-ssdp-server")
    ]
    ident = ctx.seen[0][3]
    assert ident is not None and (ident.model, ident.is_camera) == ("DCS-935L", True)


def test_a_reply_names_the_responder_not_the_searcher() -> None:
    ctx = Recorder()
    phone = socket.inet_aton("10.10.10.28")
    cam = socket.inet_aton("10.10.10.51")
    SsdpParser().udp(ctx, udp_flow(phone, 50000, cam, 1900), False, EDIMAX_REPLY, 0)
    assert [(h, how) for h, _, how, _ in ctx.seen] == [(cam, "ssdp_location:ipcam-ssdp-location")]


def test_an_igd_search_is_no_camera_signal_but_the_signatures_still_run() -> None:
    seen: list[tuple[str, bool, bytes]] = []

    class WithSignatures(Recorder):
        def _signature(self, flow: object, proto: str, is_orig: bool, data: bytes) -> None:
            seen.append((proto, is_orig, data))

    ctx = WithSignatures()
    assert parse_ssdp(IGD_SEARCH) is None
    SsdpParser().udp(ctx, udp_flow(CAM, 1900, GROUP, 1900), True, IGD_SEARCH, 0)
    assert ctx.seen == [] and seen == [("udp", True, IGD_SEARCH)]


def test_the_igd_search_still_reaches_upnp_port_mapping_through_the_inspector() -> None:
    matcher = SignatureMatcher.load()
    inspector = Inspector(Recorder().names, payloads=matcher.match_payload)
    flow = udp_flow(CAM, 1900, GROUP, 1900)
    inspector.payload(flow, True, IGD_SEARCH, 0, len(IGD_SEARCH), 0.0)
    assert flow.app is not None
    sigs: list[PayloadSignature] = flow.app["signatures"]
    assert [s.rule for s in sigs] == ["upnp_port_mapping"]


@settings(max_examples=examples(400), deadline=None)
@given(st.binary(max_size=800))
def test_hostile_payloads_never_raise(payload: bytes) -> None:
    SsdpParser().udp(Recorder(), udp_flow(CAM, 1900, GROUP, 1900), True, b"NOTIFY " + payload, 0)
    SsdpParser().udp(Recorder(), udp_flow(CAM, 1900, GROUP, 1900), True, payload, 0)
