"""Tests for netwatch.deep.dhcp: client identity (12, 60, 55), resolvers (6), hostile input."""

from __future__ import annotations

import socket
import struct

import dpkt
from hypothesis import given, settings
from hypothesis import strategies as st

from netwatch.deep.dhcp import DhcpParser, parse_dhcp
from netwatch.signatures.lan import RESOLVER_HOW
from tests.conftest import corpus_file
from tests.deep.lanctx import Recorder, udp_flow
from tests.profile import examples

CAM_MAC = bytes.fromhex("b0c554435483")
PLUG_MAC = bytes.fromhex("908d78a93d6f")
ZERO, BCAST = bytes(4), b"\xff" * 4


def dhcp(op: int, mac: bytes, options: list[tuple[int, bytes]], yiaddr: bytes = ZERO) -> bytes:
    """A BOOTP message with the DHCP cookie and these options."""
    header = struct.pack("!BBBBIHH4s4s4s4s16s", op, 1, 6, 0, 0x1234, 0, 0, ZERO, yiaddr,
                         ZERO, ZERO, mac + bytes(10))  # fmt: skip
    body = b"".join(bytes([code, len(value)]) + value for code, value in options)
    return header + bytes(192) + b"\x63\x82\x53\x63" + body + b"\xff"


def discover(mac: bytes, hostname: bytes | None, vendor: bytes, prl: bytes) -> bytes:
    opts = [(53, b"\x01"), (60, vendor), (55, prl)]
    if hostname is not None:
        opts.insert(1, (12, hostname))
    return dhcp(1, mac, opts)


UDHCP_PRL = bytes([1, 3, 6, 12, 15, 28, 42])


def test_client_fields_are_read() -> None:
    msg = parse_dhcp(discover(CAM_MAC, b"DCS-8000LH", b"udhcp 1.22.1", UDHCP_PRL))
    assert msg is not None
    assert (msg.op, msg.msg_type, msg.chaddr) == (1, 1, CAM_MAC)
    assert (msg.hostname, msg.vendor_class, msg.prl) == ("DCS-8000LH", "udhcp 1.22.1",
                                                         (1, 3, 6, 12, 15, 28, 42))  # fmt: skip
    assert msg.fingerprint() == "B0:C5:54|udhcp 1.22.1|1,3,6,12,15,28,42"


def test_a_camera_hostname_is_a_camera_signal_for_the_mac_then_for_the_leased_address() -> None:
    ctx, parser = Recorder(), DhcpParser()
    flow = udp_flow(ZERO, 68, BCAST, 67)
    parser.udp(ctx, flow, True, discover(CAM_MAC, b"DCS-8000LH", b"udhcp 1.22.1", UDHCP_PRL), 0)
    host, vendor, how, ident = ctx.seen[0]
    assert (host, vendor, how) == (CAM_MAC, "D-Link", "dhcp_hostname:dlink-dcs-dhcp-hostname")
    assert ident is not None and (ident.model, ident.is_camera) == ("DCS-8000LH", True)
    assert ("dhcp_hostname", "DCS-8000LH") in ident.raw_fields
    leased = socket.inet_aton("192.168.1.115")
    resolver = socket.inet_aton("192.168.1.1")
    ack = dhcp(2, CAM_MAC, [(53, b"\x05"), (6, resolver + ZERO)], yiaddr=leased)
    parser.udp(ctx, udp_flow(resolver, 67, BCAST, 68), True, ack, 1)
    assert ctx.seen[1][:3] == (resolver, None, RESOLVER_HOW)  # 0.0.0.0 is skipped
    assert ctx.seen[2][:3] == (leased, "D-Link", "dhcp_hostname:dlink-dcs-dhcp-hostname")
    assert len(ctx.seen) == 3 and flow.app == {"service": ["dhcp"]}


def test_a_plug_hostname_is_no_camera_signal_only_a_vendor_hint() -> None:
    ctx = Recorder()
    payload = discover(PLUG_MAC, b"DSP-W215", b"udhcp 1.21.1--LSDK-10.2-00082-4", UDHCP_PRL)
    DhcpParser().udp(ctx, udp_flow(ZERO, 68, BCAST, 67), True, payload, 0)
    assert all(how.startswith("hint:") for how in ctx.hows())
    assert all(ident is not None and not ident.is_camera for *_, ident in ctx.seen)


def test_not_dhcp_is_counted_and_ignored() -> None:
    ctx = Recorder()
    DhcpParser().udp(ctx, udp_flow(ZERO, 68, BCAST, 67), True, b"\x01" * 300, 0)
    assert ctx.seen == [] and ctx.counts == {"dhcp_unparsed": 1}


def test_a_cut_option_ends_the_walk_and_keeps_what_came_before() -> None:
    full = discover(CAM_MAC, b"DCS-8000LH", b"udhcp 1.22.1", UDHCP_PRL)
    cut = full[: full.index(b"udhcp") + 3]
    msg = parse_dhcp(cut)
    assert msg is not None and (msg.hostname, msg.vendor_class) == ("DCS-8000LH", None)
    assert parse_dhcp(full[:150]) is None  # a snaplen-150 frame keeps no options at all


def test_real_capture_dcs8000lh() -> None:
    """shfpf_dlink-dcs8000lh_dhcp.pcap: DISCOVER/OFFER/REQUEST/ACK of the DCS-8000LH."""
    path = corpus_file("pcaps", "camera-real", "shfpf_dlink-dcs8000lh_dhcp.pcap")
    ctx, parser = Recorder(), DhcpParser()
    with path.open("rb") as fh:
        for _ts, frame in dpkt.pcap.Reader(fh):
            ip = dpkt.ethernet.Ethernet(frame).data
            udp = ip.data
            flow = udp_flow(bytes(ip.src), udp.sport, bytes(ip.dst), udp.dport)
            parser.udp(ctx, flow, True, bytes(udp.data), 0)
    cams = {
        (host, how) for host, _, how, ident in ctx.seen if ident is not None and ident.is_camera
    }
    assert cams == {
        (CAM_MAC, "dhcp_hostname:dlink-dcs-dhcp-hostname"),
        (socket.inet_aton("192.168.1.115"), "dhcp_hostname:dlink-dcs-dhcp-hostname"),
    }
    resolvers = {host for host, _, how, _ in ctx.seen if how == RESOLVER_HOW}
    assert resolvers == {socket.inet_aton("192.168.1.1")}


@settings(max_examples=examples(400), deadline=None)
@given(st.binary(max_size=600))
def test_hostile_payloads_never_raise(payload: bytes) -> None:
    DhcpParser().udp(Recorder(), udp_flow(ZERO, 68, BCAST, 67), True, payload, 0)


@settings(max_examples=examples(300), deadline=None)
@given(st.lists(st.tuples(st.integers(1, 254), st.binary(max_size=40)), max_size=12),
       st.integers(1, 2), st.binary(min_size=6, max_size=6))  # fmt: skip
def test_any_options_parse_without_raising(
    options: list[tuple[int, bytes]], op: int, mac: bytes
) -> None:
    msg = parse_dhcp(dhcp(op, mac, options))
    assert msg is not None and msg.chaddr == mac
    DhcpParser().udp(Recorder(), udp_flow(ZERO, 68, BCAST, 67), True, dhcp(op, mac, options), 0)
