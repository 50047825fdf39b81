"""Tests for netwatch.deep.mdns: names and service types of mDNS responses (not queries)."""

from __future__ import annotations

import socket

import dpkt
from hypothesis import given, settings
from hypothesis import strategies as st

from netwatch.deep.mdns import lan_pairs, observe_mdns, parse_mdns
from tests.conftest import corpus_file
from tests.deep.lanctx import Recorder, udp_flow
from tests.profile import examples

CAM = socket.inet_aton("192.168.1.115")
GROUP = socket.inet_aton("224.0.0.251")


def response(*records: tuple[str, int, bytes]) -> bytes:
    msg = dpkt.dns.DNS(id=0, op=0x8400)  # QR (a response) and AA
    msg.qd = []
    msg.an = []
    for name, rtype, rdata in records:
        rr = dpkt.dns.DNS.RR(name=name, type=rtype, cls=1, ttl=120)
        if rtype == dpkt.dns.DNS_PTR:
            rr.ptrname = rdata.decode()
        else:
            rr.rdata = rdata
        msg.an.append(rr)
    return bytes(msg)


def capture_payloads(name: str) -> list[bytes]:
    path = corpus_file("pcaps", "camera-real", name)
    out = []
    with path.open("rb") as fh:
        for _ts, frame in dpkt.pcap.Reader(fh):
            udp = dpkt.ethernet.Ethernet(frame).data.data
            out.append(bytes(udp.data))
    return out


def test_psia_service_and_names() -> None:
    payload = response(
        ("_psia._tcp.local", dpkt.dns.DNS_PTR, b"Cam 1._psia._tcp.local"),
        ("cam1.local", dpkt.dns.DNS_A, socket.inet_aton("192.168.1.115")),
    )
    found = parse_mdns(payload)
    assert found is not None
    names, services, _txt = found
    assert services == ("_psia._tcp",)
    assert set(names) == {"_psia._tcp.local", "Cam 1._psia._tcp.local", "cam1.local"}
    ctx = Recorder()
    observe_mdns(ctx, udp_flow(CAM, 5353, GROUP, 5353), True, payload)
    assert [(h, v, how) for h, v, how, _ in ctx.seen] == [
        (CAM, None, "mdns_service:psia-mdns-service")
    ]


def test_a_query_is_never_a_device_signal() -> None:
    query = bytes(dpkt.dns.DNS(id=0, qd=[dpkt.dns.DNS.Q(name="_miio._udp.local", type=12)]))
    assert parse_mdns(query) is None


def test_dcs8000lh_responses_name_the_camera_model() -> None:
    """shfpf_dlink-dcs8000lh_mdns-responses.pcap: DCS-8000LH-B0C554435483.local, _dcp._tcp."""
    ctx = Recorder()
    for payload in capture_payloads("shfpf_dlink-dcs8000lh_mdns-responses.pcap"):
        observe_mdns(ctx, udp_flow(CAM, 5353, GROUP, 5353), True, payload)
    hows = set(ctx.hows())
    assert "mdns_name:dlink-dcs-mdns-name" in hows
    assert "hint:mdns_service:dlink-dcp-mdns-service" in hows
    models = {i.model for *_, i in ctx.seen if i is not None and i.is_camera}
    assert models == {"DCS-8000LH"}


def test_the_dsp_w215_plug_gives_hints_only() -> None:
    """The control plug announces _dhnap._tcp and dsp3D6F.local: never a camera signal."""
    path = corpus_file(
        "pcaps", "camera-real", "sentinel_control-dlink-switch-dspw215_setup-A1.pcap"
    )
    ctx = Recorder()
    with path.open("rb") as fh:
        for _ts, frame in dpkt.pcap.Reader(fh):
            ip = dpkt.ethernet.Ethernet(frame).data
            udp = getattr(ip, "data", None)
            if isinstance(udp, dpkt.udp.UDP) and udp.sport == 5353:
                observe_mdns(ctx, udp_flow(bytes(ip.src), 5353, GROUP, 5353), True, bytes(udp.data))
    assert ctx.hows() and all(how.startswith("hint:") for how in ctx.hows())


def test_lan_pairs_skip_service_owner_names() -> None:
    pairs = lan_pairs(("_http._tcp.local", "DCS-935L.local"), ("_http._tcp",))
    assert pairs == [("mdns_service", "_http._tcp"), ("mdns_name", "DCS-935L.local")]


@settings(max_examples=examples(400), deadline=None)
@given(st.binary(max_size=600))
def test_hostile_payloads_never_raise(payload: bytes) -> None:
    observe_mdns(Recorder(), udp_flow(CAM, 5353, GROUP, 5353), True, b"\x00\x00\x84\x00" + payload)
    observe_mdns(Recorder(), udp_flow(CAM, 5353, GROUP, 5353), True, payload)


def txt_response(instance: str, *strings: str) -> bytes:
    """A HomeKit-style announcement: PTR to the instance, its TXT record."""
    msg = dpkt.dns.DNS(id=0, op=0x8400)
    msg.qd = []
    ptr = dpkt.dns.DNS.RR(name="_hap._tcp.local", type=dpkt.dns.DNS_PTR, cls=1, ttl=120)
    ptr.ptrname = instance
    txt = dpkt.dns.DNS.RR(name=instance, type=dpkt.dns.DNS_TXT, cls=0x8001, ttl=4500)
    txt.text = [s.encode() for s in strings]
    msg.an = [ptr, txt]
    return bytes(msg)


def test_a_homekit_camera_is_recognised_by_its_accessory_category() -> None:
    """_hap._tcp TXT ci=17 (IP camera) makes the sender a camera; ci=5 (a bulb) does not."""
    camera = txt_response("Front Door._hap._tcp.local", "c#=3", "ci=17", "md=Doorbell Pro")
    found = parse_mdns(camera)
    assert found is not None and "_hap._tcp|ci=17" in found.txt
    assert "_hap._tcp|md=Doorbell Pro" in found.txt
    ctx = Recorder()
    observe_mdns(ctx, udp_flow(CAM, 5353, GROUP, 5353), True, camera)
    assert "mdns_txt:homekit-ip-camera" in ctx.hows()
    bulb = Recorder()
    observe_mdns(
        bulb, udp_flow(CAM, 5353, GROUP, 5353), True, txt_response("Lamp._hap._tcp.local", "ci=5")
    )
    assert not [h for h in bulb.hows() if not h.startswith("hint:")]


def test_txt_strings_are_bounded_and_need_a_service_owner() -> None:
    many = txt_response("X._hap._tcp.local", *(f"k{i}=v" for i in range(100)))
    found = parse_mdns(many)
    assert found is not None and len(found.txt) == 32
    plain = txt_response("host.local", "ci=17")
    found = parse_mdns(plain)
    assert found is not None and found.txt == ()
