"""Tests for the fast-path decoder: every link type, tag, tunnel and fragment form it handles."""

from __future__ import annotations

import struct
import time

import pytest

from netwatch.decode.frames import FRAGMENT, NO_VLAN, Decoded, Decoder, describe
from netwatch.decode.walk import MAX_VLAN_TAGS
from netwatch.testing import pcapgen as g

CAM = g.Route.of("bc:ad:28:00:00:01", "10.20.0.11", "00:11:22:33:44:55", "175.16.199.1")
CAM6 = g.Route.of("bc:ad:28:00:00:01", "fd00::11", "00:11:22:33:44:55", "2001:218::1")
SYN = 0x02


def dec(frame: bytes, linktype: int = 1, wirelen: int | None = None) -> tuple[Decoder, Decoded]:
    d = Decoder()
    out = d.decode(linktype, frame, len(frame) if wirelen is None else wirelen, 1.0)
    assert out is not None, d.failures
    return d, out


def tuple5(d: Decoded) -> tuple[str, str, int, int, int]:
    return (g.ip_text(d[0]), g.ip_text(d[1]), d[2], d[3], d[4])


#: 802.11 QoS data, To DS (frame control, duration, 3 addresses, sequence, QoS control).
WIFI_QOS_TO_DS = bytes([0x88, 0x01]) + bytes(22) + bytes(2)
#: 802.11 data with To DS and From DS: four addresses (a wireless bridge).
WIFI_WDS = bytes([0x08, 0x03]) + bytes(28)
SNAP_IPV4 = b"\xaa\xaa\x03\x00\x00\x00\x08\x00"
#: A radiotap header of 12 bytes (version, pad, length, present flags, 4 bytes of fields).
RADIOTAP = b"\x00\x00\x0c\x00" + bytes(8)


def inner_udp() -> bytes:
    return g.udp_frame(CAM, 40000, 443, b"x" * 100)


def test_plain_ethernet_ipv4_tcp() -> None:
    frame = g.tcp_frame(CAM, 50000, 443, seq=7, ack=0, flags=SYN, window=1000)
    _, d = dec(frame)
    assert tuple5(d) == ("10.20.0.11", "175.16.199.1", 6, 50000, 443)
    info = describe(d)
    assert (info["tcp_flags"], info["seq"], info["win"], info["payload_len"]) == (SYN, 7, 1000, 0)
    assert info["ip_len"] == 40 and info["mac_offset"] == 0 and info["vlan"] == NO_VLAN


def test_udp_payload_offset_points_at_payload() -> None:
    frame = g.udp_frame(CAM, 1, 2, b"hello")
    _, d = dec(frame)
    assert frame[d[10] : d[10] + d[11]] == b"hello"


@pytest.mark.parametrize("vlans", [(20,), (100, 20)])
def test_vlan_and_qinq(vlans: tuple[int, ...]) -> None:
    route = g.Route(CAM.src_mac, CAM.dst_mac, CAM.src_ip, CAM.dst_ip, vlans)
    _, d = dec(g.udp_frame(route, 1, 2, b"x"))
    assert d[14] == 20 and d[3:5] == (1, 2)


def test_ipv6_with_extension_headers() -> None:
    udp = g.udp_datagram(CAM6.src_ip, CAM6.dst_ip, 5000, 53, b"q" * 12)
    hop = bytes([60, 0]) + bytes(6)  # hop-by-hop -> destination options
    dst_opts = bytes([17, 0]) + bytes(6)  # destination options -> UDP
    pkt = g.ipv6(CAM6.src_ip, CAM6.dst_ip, 0, hop + dst_opts + udp)
    _, d = dec(g.ethernet(CAM6.dst_mac, CAM6.src_mac, 0x86DD, pkt))
    assert tuple5(d) == ("fd00::11", "2001:218::1", 17, 5000, 53)
    assert d[11] == 12 and d[5] == 40 + 16 + 20


def _ip_in_eth(packet: bytes, etype: int = 0x0800) -> bytes:
    return g.ethernet(b"\x02" * 6, b"\x04" * 6, etype, packet)


def _gre(proto: int, payload: bytes, flags: int = 0, extra: bytes = b"") -> bytes:
    return struct.pack("!HH", flags, proto) + extra + payload


def _outer(payload: bytes, proto: int = 47) -> bytes:
    return _ip_in_eth(g.ipv4(g.ip_bytes("192.0.2.1"), g.ip_bytes("192.0.2.2"), proto, payload))


@pytest.mark.parametrize(
    ("name", "frame"),
    [
        ("gre-ip", lambda f: _outer(_gre(0x0800, f[14:]))),
        ("gre-key-seq-csum", lambda f: _outer(_gre(0x0800, f[14:], 0xB000, bytes(12)))),
        ("gre-teb", lambda f: _outer(_gre(0x6558, f))),
        ("erspan-1", lambda f: _outer(_gre(0x88BE, f))),
        ("erspan-2", lambda f: _outer(_gre(0x88BE, bytes(8) + f, 0x1000, bytes(4)))),
        ("erspan-3", lambda f: _outer(_gre(0x22EB, bytes(12) + f, 0x1000, bytes(4)))),
        (
            "erspan-3-subheader",
            lambda f: _outer(_gre(0x22EB, bytes(11) + b"\x01" + bytes(8) + f, 0x1000, bytes(4))),
        ),
        ("ipip", lambda f: _outer(f[14:], proto=4)),
        (
            "vxlan",
            lambda f: _ip_in_eth(
                g.ipv4(
                    g.ip_bytes("192.0.2.1"),
                    g.ip_bytes("192.0.2.2"),
                    17,
                    g.udp_datagram(
                        g.ip_bytes("192.0.2.1"),
                        g.ip_bytes("192.0.2.2"),
                        1234,
                        4789,
                        b"\x08\x00\x00\x00\x00\x00\x01\x00" + f,
                    ),
                )
            ),
        ),
        (
            "geneve-eth",
            lambda f: _ip_in_eth(
                g.ipv4(
                    g.ip_bytes("192.0.2.1"),
                    g.ip_bytes("192.0.2.2"),
                    17,
                    g.udp_datagram(
                        g.ip_bytes("192.0.2.1"),
                        g.ip_bytes("192.0.2.2"),
                        1234,
                        6081,
                        b"\x01\x00\x65\x58\x00\x00\x01\x00" + bytes(4) + f,
                    ),
                )
            ),
        ),
        (
            "geneve-ip",
            lambda f: _ip_in_eth(
                g.ipv4(
                    g.ip_bytes("192.0.2.1"),
                    g.ip_bytes("192.0.2.2"),
                    17,
                    g.udp_datagram(
                        g.ip_bytes("192.0.2.1"),
                        g.ip_bytes("192.0.2.2"),
                        1234,
                        6081,
                        b"\x00\x00\x08\x00\x00\x00\x01\x00" + f[14:],
                    ),
                )
            ),
        ),
        ("mpls-ip", lambda f: _ip_in_eth(b"\x00\x01\x01\x40" + f[14:], 0x8847)),
        (
            "mpls-2labels-pw-cw",
            lambda f: _ip_in_eth(b"\x00\x01\x00\x40" + b"\x00\x02\x01\x40" + bytes(4) + f, 0x8847),
        ),
        ("pppoe", lambda f: _ip_in_eth(b"\x11\x00\x00\x01\x00\x00\x00\x21" + f[14:], 0x8864)),
    ],
)
def test_tunnels_yield_the_inner_flow(name: str, frame: object) -> None:
    inner = inner_udp()
    assert callable(frame)
    _, d = dec(frame(inner))
    assert tuple5(d) == ("10.20.0.11", "175.16.199.1", 17, 40000, 443), name
    assert d[11] == 100


def test_erspan_inner_mac_is_reported() -> None:
    frame = _outer(_gre(0x88BE, bytes(8) + inner_udp(), 0x1000, bytes(4)))
    _, d = dec(frame)
    assert d[12][d[13] + 6 : d[13] + 12] == CAM.src_mac


@pytest.mark.parametrize(
    ("linktype", "prefix"),
    [
        (113, b"\x00\x00\x00\x01\x00\x06" + bytes(8) + b"\x08\x00"),  # Linux SLL
        (276, b"\x08\x00\x00\x00" + bytes(4) + b"\x00\x01\x00\x06" + bytes(8)),  # SLL2
        (0, struct.pack("<I", 2)),  # BSD NULL, little-endian host
        (0, struct.pack(">I", 2)),  # BSD NULL, big-endian host
        (108, struct.pack(">I", 2)),  # OpenBSD LOOP
        (101, b""),  # raw IP
        (228, b""),  # raw IPv4
        (9, b"\x00\x21"),  # PPP
        (9, b"\xff\x03\x00\x21"),  # PPP in HDLC-like framing
        (9, b"\x21"),  # PPP, protocol field compressed
        (50, b"\xff\x03\x00\x21"),  # PPP_HDLC
        (105, WIFI_QOS_TO_DS + SNAP_IPV4),  # 802.11 QoS data from a station
        (105, WIFI_WDS + SNAP_IPV4),  # four addresses
        (127, RADIOTAP + WIFI_QOS_TO_DS + SNAP_IPV4),
    ],
)
def test_link_types(linktype: int, prefix: bytes) -> None:
    _, d = dec(prefix + inner_udp()[14:], linktype)
    assert tuple5(d) == ("10.20.0.11", "175.16.199.1", 17, 40000, 443)


@pytest.mark.parametrize(
    ("frame", "kind"),
    [
        (bytes([0x08, 0x41]) + bytes(22) + SNAP_IPV4, "wifi_protected"),
        (bytes([0x80, 0x00]) + bytes(22) + SNAP_IPV4, "wifi_not_data"),  # a beacon
        (bytes([0x48, 0x01]) + bytes(22) + SNAP_IPV4, "wifi_not_data"),  # null data
        (bytes([0x08, 0x01]) + bytes(22) + b"\x42\x42\x03" + bytes(5), "llc"),
    ],
)
def test_wifi_frames_without_ip_are_counted(frame: bytes, kind: str) -> None:
    d = Decoder()
    assert d.decode(105, frame + inner_udp()[14:], 200, 1.0) is None
    assert d.non_ip == {kind: 1} and not d.failures


def test_ppp_control_protocols_are_not_ip() -> None:
    d = Decoder()
    assert d.decode(9, b"\xff\x03\xc0\x21" + bytes(20), 24, 1.0) is None
    assert d.non_ip == {"ppp_control": 1}


def test_wire_length_not_caplen_for_ip_bytes() -> None:
    frame = g.udp_frame(CAM, 1, 2, b"x" * 1000)
    _, d = dec(frame[:150], wirelen=len(frame))
    assert d[5] == 1028 and d[11] == 1000


def test_tso_zero_total_length_uses_frame() -> None:
    frame = bytearray(g.udp_frame(CAM, 1, 2, b"x" * 100))
    frame[16:18] = b"\x00\x00"
    _, d = dec(bytes(frame))
    assert d[5] == 128


def test_ipv4_fragments_join_the_first_fragments_flow() -> None:
    frames = g.udp_fragment_frames(CAM, 7000, 7001, b"z" * 3000, ident=99)
    assert len(frames) == 3
    decoder = Decoder()
    outs = [decoder.decode(1, f, len(f), 1.0) for f in frames]
    assert all(o is not None for o in outs)
    assert {o[3:5] for o in outs if o} == {(7000, 7001)}
    assert [o[6] == FRAGMENT for o in outs if o] == [False, True, True]


def test_out_of_order_fragments_are_held_then_released() -> None:
    frames = g.udp_fragment_frames(CAM, 7000, 7001, b"z" * 3000, ident=5)
    decoder = Decoder()
    assert decoder.decode(1, frames[2], len(frames[2]), 1.0) is None
    assert decoder.decode(1, frames[1], len(frames[1]), 1.1) is None
    first = decoder.decode(1, frames[0], len(frames[0]), 1.2)
    assert first is not None and first[3:5] == (7000, 7001)
    assert [d[3:5] for _, d in decoder.released] == [(7000, 7001)] * 2
    assert decoder.failures == {}


def test_orphan_fragments_are_counted_not_silently_dropped() -> None:
    frames = g.udp_fragment_frames(CAM, 7000, 7001, b"z" * 3000, ident=5)
    decoder = Decoder()
    decoder.decode(1, frames[1], len(frames[1]), 1.0)
    decoder.frags.flush()
    assert decoder.failures == {"fragment_orphaned": 1}


def test_ipv6_fragment_header() -> None:
    udp = g.udp_datagram(CAM6.src_ip, CAM6.dst_ip, 5000, 5001, b"a" * 64)
    first = g.ipv6(CAM6.src_ip, CAM6.dst_ip, 44, struct.pack("!BxHI", 17, 0x0001, 7) + udp[:32])
    later = g.ipv6(CAM6.src_ip, CAM6.dst_ip, 44, struct.pack("!BxHI", 17, 32, 7) + udp[32:])
    decoder = Decoder()
    a = decoder.decode(1, _ip_in_eth(first, 0x86DD), 200, 1.0)
    b = decoder.decode(1, _ip_in_eth(later, 0x86DD), 200, 1.0)
    assert a is not None and b is not None
    assert a[3:5] == b[3:5] == (5000, 5001) and b[6] == FRAGMENT


def test_fragment_state_is_bounded() -> None:
    decoder = Decoder(max_fragments=10)
    for ident in range(50):
        frames = g.udp_fragment_frames(CAM, 1, 2, b"z" * 2000, ident=ident)
        decoder.decode(1, frames[0], len(frames[0]), 1.0)
    assert len(decoder.frags) == 10
    assert decoder.frags.evicted == 40 and not decoder.failures  # an event, not a lost frame


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"\x00" * 8, "link_truncated"),
        (g.ethernet(b"\x01" * 6, b"\x02" * 6, 0x0800, b"\x45\x00")[:20], "ipv4_truncated"),
        (g.ethernet(b"\x01" * 6, b"\x02" * 6, 0x0800, b"\x55" + bytes(39)), "ip_bad_version"),
        (g.ethernet(b"\x01" * 6, b"\x02" * 6, 0x86DD, b"\x60" + bytes(10))[:30], "ipv6_truncated"),
        (g.tcp_frame(CAM, 1, 2, seq=0, ack=0, flags=SYN)[:40], "tcp_truncated"),
    ],
    ids=["link", "ipv4", "version", "ipv6", "tcp"],
)
def test_malformed_frames_are_counted(frame: bytes, reason: str) -> None:
    decoder = Decoder()
    assert decoder.decode(1, frame, len(frame), 0.0) is None
    assert decoder.failures == {reason: 1}


def test_non_ip_is_counted_separately() -> None:
    decoder = Decoder()
    arp = g.ethernet(b"\xff" * 6, b"\x02" * 6, 0x0806, bytes(28))
    assert decoder.decode(1, arp, len(arp), 0.0) is None
    assert decoder.non_ip == {"arp": 1} and decoder.failures == {}


def test_unknown_linktype_counted() -> None:
    decoder = Decoder()
    assert decoder.decode(147, b"\x00" * 40, 40, 0.0) is None
    assert decoder.failures == {"unknown_linktype": 1}


def test_ipv6_udp_header_cut_by_the_snaplen_is_counted() -> None:
    frame = g.udp_frame(CAM6, 5000, 53, b"q" * 40)[:60]  # 6 of the 8 UDP header bytes
    decoder = Decoder()
    assert decoder.decode(1, frame, 1500, 0.0) is None
    assert decoder.failures == {"udp_truncated": 1}


def stacked_vlan_frame(tags: int) -> bytes:
    """A UDP frame behind ``tags`` 802.1Q tags (VLAN ids 1, 2, ...), built tag by tag."""
    ip = g.ipv4(CAM.src_ip, CAM.dst_ip, 17, g.udp_datagram(CAM.src_ip, CAM.dst_ip, 1, 2, b"x"))
    stack = b"".join(struct.pack("!HH", 0x8100, (i % 4095) + 1) for i in range(tags))
    return CAM.dst_mac + CAM.src_mac + stack + struct.pack("!H", 0x0800) + ip


@pytest.mark.parametrize("tags", [0, 1, 2, 3, MAX_VLAN_TAGS])
def test_vlan_stacks_up_to_the_bound_decode_on_both_paths(tags: int) -> None:
    frame = stacked_vlan_frame(tags)
    fast, slow = Decoder(), Decoder()
    d = fast.decode(1, frame, len(frame), 1.0)
    innermost_vlan = tags if tags else NO_VLAN  # tag i carries VLAN id i + 1
    assert d is not None and d[3:5] == (1, 2) and d[14] == innermost_vlan
    assert d == slow._walk(1, frame, len(frame), 1.0)
    assert fast.failures == slow.failures == {}


def _best_of(rounds: int, frame: bytes) -> float:
    """The fastest of ``rounds`` timings of 50 decodes (the minimum is the least noisy)."""
    decoder = Decoder()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(50):
            decoder.decode(1, frame, len(frame), 1.0)
        best = min(best, time.perf_counter() - start)
    return best


def test_a_thousand_stacked_vlan_tags_are_rejected_cheaply() -> None:
    deep = stacked_vlan_frame(1000)
    decoder = Decoder()
    assert decoder.decode(1, deep, len(deep), 0.0) is None
    assert decoder.failures == {"vlan_too_deep": 1}
    one_past = stacked_vlan_frame(MAX_VLAN_TAGS + 1)
    assert decoder.decode(1, one_past, len(one_past), 0.0) is None
    assert decoder.failures == {"vlan_too_deep": 2}
    # Walking every tag cost ~80x a QinQ frame; the bound keeps it near a QinQ frame's cost.
    assert _best_of(7, deep) < 4 * _best_of(7, stacked_vlan_frame(2))
