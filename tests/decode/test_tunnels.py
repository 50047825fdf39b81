"""UDP tunnels (Teredo, AYIYA, GTPv1-U, VXLAN, Geneve, GRE in UDP) and data-centre link
headers (PBB, VN-Tag, FabricPath): the inner flow, the outer hop, malformed headers."""

from __future__ import annotations

import struct

import pytest

from netwatch.decode.frames import Decoded, Decoder
from netwatch.decode.tunnels import (
    AYIYA,
    GTPV1,
    PLAIN,
    TEREDO,
    Payload,
    TunnelHeader,
    gtpv1,
    teredo,
    teredo_detected,
    tunnel_kind,
)
from netwatch.decode.walk import MAX_TUNNEL_DEPTH
from netwatch.testing import pcapgen as g

OUT_A, OUT_B = g.ip_bytes("192.0.2.1"), g.ip_bytes("192.0.2.2")
V6_SRC, V6_DST = g.ip_bytes("2001:0:4137:9e50::1"), g.ip_bytes("2001:4860::68")
V4_SRC, V4_DST = g.ip_bytes("10.20.0.11"), g.ip_bytes("175.16.199.1")
MAC_A, MAC_B = b"\x02" * 6, b"\x04" * 6


def inner6(payload: bytes = b"q" * 12) -> bytes:
    """An IPv6 UDP packet 5000 -> 53 (a Teredo address as its source)."""
    return g.ipv6(V6_SRC, V6_DST, 17, g.udp_datagram(V6_SRC, V6_DST, 5000, 53, payload))


def inner4(payload: bytes = b"x" * 20) -> bytes:
    """An IPv4 UDP packet 40000 -> 443."""
    return g.ipv4(V4_SRC, V4_DST, 17, g.udp_datagram(V4_SRC, V4_DST, 40000, 443, payload))


def over_udp(payload: bytes, sport: int, dport: int) -> bytes:
    """``payload`` as a UDP datagram between the two outer addresses, on Ethernet."""
    udp = g.udp_datagram(OUT_A, OUT_B, sport, dport, payload)
    return g.ethernet(MAC_B, MAC_A, 0x0800, g.ipv4(OUT_A, OUT_B, 17, udp))


def decode(frame: bytes) -> tuple[Decoder, Decoded | None]:
    decoder = Decoder()
    return decoder, decoder.decode(1, frame, len(frame), 1.0)


def five(d: Decoded | None) -> tuple[str, str, int, int, int]:
    assert d is not None
    return (g.ip_text(d[0]), g.ip_text(d[1]), d[2], d[3], d[4])


def outer_five(decoder: Decoder) -> list[tuple[tuple[str, str, int, int, int], str | None]]:
    return [(five(hop.d), hop.tunnel.service) for hop in decoder.outer]


ORIGIN = b"\x00\x00" + b"\x12\x34" + bytes(4)  # origin indication (port, address obfuscated)
AUTH = b"\x00\x01\x02\x03" + b"id" + b"sig" + bytes(8) + b"\x00"  # id 2, auth 3, nonce, conf


def gtp(payload: bytes, flags: int = 0x30, msg: int = 255, extra: bytes = b"") -> bytes:
    """A GTPv1 header (``extra``: the optional word and extension headers) and payload."""
    return struct.pack("!BBHI", flags, msg, len(extra) + len(payload), 7) + extra + payload


def ayiya_header(opcode: int = 1, next_header: int = 41) -> bytes:
    """AYIYA with a 16-byte identity (nibble 4) and a 20-byte signature (nibble 5)."""
    return bytes([0x41, 0x52, 0x10 | opcode, next_header]) + bytes(4) + bytes(16) + bytes(20)


# -- Teredo ------------------------------------------------------------------------------


@pytest.mark.parametrize("lead", [b"", ORIGIN, AUTH, AUTH + ORIGIN])
def test_teredo_on_its_port_yields_the_inner_ipv6_flow(lead: bytes) -> None:
    decoder, d = decode(over_udp(lead + inner6(), 3797, 3544))
    assert five(d) == ("2001:0:4137:9e50::1", "2001:4860::68", 17, 5000, 53)
    assert d is not None and d[11] == 12 and d[13] == -1
    assert outer_five(decoder) == [(("192.0.2.1", "192.0.2.2", 17, 3797, 3544), "teredo")]
    assert decoder.outer[0].d[10] == -1  # the outer datagram is never inspected
    assert not decoder.failures


def test_teredo_reply_from_the_server_port_is_decapsulated() -> None:
    decoder, d = decode(over_udp(ORIGIN + inner6(), 3544, 3797))
    assert five(d)[3:] == (5000, 53)
    assert outer_five(decoder)[0][0][3:] == (3544, 3797)


@pytest.mark.parametrize("lead", [b"", ORIGIN])
def test_teredo_is_detected_on_any_port(lead: bytes) -> None:
    decoder, d = decode(over_udp(lead + inner6(), 3797, 32900))
    assert five(d)[2:] == (17, 5000, 53)
    assert outer_five(decoder)[0][1] == "teredo"


def test_ipv6_looking_payload_without_teredo_marks_stays_plain_udp() -> None:
    plain6 = g.ipv6(g.ip_bytes("fd00::1"), g.ip_bytes("fd00::2"), 59, b"")
    decoder, d = decode(over_udp(plain6 + bytes(20), 1000, 2000))
    assert five(d) == ("192.0.2.1", "192.0.2.2", 17, 1000, 2000)
    assert not decoder.outer and not decoder.failures


def test_teredo_bubble_has_an_outer_flow_and_no_inner_one() -> None:
    bubble = g.ipv6(V6_SRC, V6_DST, 59, b"")
    for trailer in (b"", b"trailing"):
        decoder, d = decode(over_udp(ORIGIN + bubble + trailer, 3797, 3544))
        assert d is None and not decoder.failures
        assert outer_five(decoder)[0][1] == "teredo"


def test_teredo_with_a_wrong_payload_length_is_counted_and_stays_plain() -> None:
    decoder, d = decode(over_udp(inner6() + b"extra", 3797, 3544))
    assert five(d)[3:] == (3797, 3544)
    assert decoder.tunnels["teredo_bad_length"] == 1 and not decoder.outer
    assert not decoder.failures


def test_teredo_headers_in_a_wrong_order_are_not_teredo() -> None:
    assert teredo(ORIGIN + AUTH + inner6(), 0, len(ORIGIN + AUTH + inner6())) is PLAIN
    assert teredo(ORIGIN + ORIGIN + inner6(), 0, 16 + len(inner6())) is PLAIN
    assert teredo(b"\x45" + bytes(60), 0, 61) is PLAIN


def test_teredo_detection_follows_zeeks_rules() -> None:
    bubble = g.ipv6(V6_SRC, V6_DST, 59, b"")
    assert teredo_detected(bubble, 0, 40)
    assert teredo_detected(ORIGIN + inner6(), 0, 8 + len(inner6()))
    assert teredo_detected(AUTH + ORIGIN + inner6(), 0, len(AUTH + ORIGIN + inner6()))
    assert not teredo_detected(AUTH + inner6(), 0, len(AUTH + inner6()))  # no origin
    other = g.ipv6(g.ip_bytes("fd00::1"), g.ip_bytes("fd00::2"), 59, b"")
    assert not teredo_detected(other, 0, 40)


# -- AYIYA --------------------------------------------------------------------------------


@pytest.mark.parametrize("port", [5072, 40000])
def test_ayiya_forward_yields_the_inner_flow(port: int) -> None:
    decoder, d = decode(over_udp(ayiya_header() + inner6(), 53859, port))
    assert five(d)[2:] == (17, 5000, 53)
    assert outer_five(decoder)[0][1] == "ayiya"


def test_ayiya_large_identity() -> None:
    header = bytes([0x81, 0x52, 0x11, 41]) + bytes(4) + bytes(256) + bytes(20)
    _decoder, d = decode(over_udp(header + inner6(), 12345, 5072))
    assert five(d)[3:] == (5000, 53)


def test_ayiya_other_operations_carry_no_packet() -> None:
    decoder, d = decode(over_udp(ayiya_header(opcode=2) + inner6(), 53859, 5072))
    assert five(d)[3:] == (53859, 5072) and not decoder.outer
    decoder, d = decode(over_udp(ayiya_header(), 53859, 5072))  # forward, but empty
    assert d is None and outer_five(decoder)[0][1] == "ayiya"


def test_ayiya_truncated_header_is_counted() -> None:
    decoder, d = decode(over_udp(ayiya_header()[:20], 53859, 5072))
    assert decoder.tunnels["ayiya_truncated"] == 1 and five(d)[4] == 5072


# -- GTPv1-U -------------------------------------------------------------------------------


def test_gtp_t_pdu_yields_the_inner_ipv4_flow() -> None:
    decoder, d = decode(over_udp(gtp(inner4()), 2152, 2152))
    assert five(d) == ("10.20.0.11", "175.16.199.1", 17, 40000, 443)
    assert outer_five(decoder) == [(("192.0.2.1", "192.0.2.2", 17, 2152, 2152), "gtpv1")]


def test_gtp_with_sequence_word_and_extension_headers() -> None:
    # E and S flags: sequence 1, N-PDU 0, next extension type 0x85; one 8-byte extension
    # (PDU session container) ending the chain
    extra = struct.pack("!HBB", 1, 0, 0x85) + bytes([2, 0x10, 0x05, 0, 0, 0, 0, 0])
    _decoder, d = decode(over_udp(gtp(inner6(), flags=0x36, extra=extra), 5906, 2152))
    assert five(d)[3:] == (5000, 53)


@pytest.mark.parametrize(
    ("datagram", "reason"),
    [
        (gtp(inner4() + b"pad"), "gtp_bad_length"),
        (gtp(inner4(), flags=0x50), "gtp_malformed"),  # version 2
        (gtp(b"\x55" + inner4()[1:]), "gtp_malformed"),  # not IP inside
        (gtp(inner4(), flags=0x34, extra=bytes(4) + b"\x00\x00"), "gtp_malformed"),
        (gtp(inner4()[:10]), "gtp_truncated"),
    ],
)
def test_malformed_gtp_is_counted_and_stays_plain(datagram: bytes, reason: str) -> None:
    decoder, d = decode(over_udp(datagram, 2152, 2152))
    assert decoder.tunnels[reason] == 1 and not decoder.outer and not decoder.failures
    assert five(d)[3:] == (2152, 2152)


def test_gtp_signalling_and_gtp_prime_are_plain_udp() -> None:
    for datagram in (gtp(bytes(10), msg=16), gtp(inner4(), flags=0x20)):
        decoder, d = decode(over_udp(datagram, 2123, 2123))
        assert five(d)[3:] == (2123, 2123) and not decoder.outer and not decoder.failures


def test_false_gtp_from_port_2152_to_dns_stays_dns() -> None:
    decoder, d = decode(over_udp(g.dns_query(0x1234, "example.com"), 2152, 53))
    assert five(d)[3:] == (2152, 53) and not decoder.outer


def test_gtp_right_inside_gtp_is_refused() -> None:
    nested = g.ipv4(OUT_A, OUT_B, 17, g.udp_datagram(OUT_A, OUT_B, 2152, 2152, gtp(inner4())))
    decoder, d = decode(over_udp(gtp(nested), 2152, 2152))
    assert decoder.tunnels["gtp_malformed"] == 1
    assert five(d)[3:] == (2152, 2152) and len(decoder.outer) == 1
    assert gtpv1(gtp(inner4()), 0, len(gtp(inner4())), in_gtp=True) == "gtp_malformed"


def test_teredo_inside_gtp_gives_two_outer_hops() -> None:
    teredo_udp = g.udp_datagram(OUT_A, OUT_B, 52298, 3544, ORIGIN + inner6())
    decoder, d = decode(over_udp(gtp(g.ipv4(OUT_A, OUT_B, 17, teredo_udp)), 2152, 2152))
    assert five(d)[3:] == (5000, 53)
    assert [s for _, s in outer_five(decoder)] == ["gtpv1", "teredo"]


# -- other UDP tunnels and the walk's bookkeeping -----------------------------------------


def test_vxlan_and_geneve_outer_hops() -> None:
    ether = g.ethernet(MAC_B, MAC_A, 0x0800, inner4())
    decoder, d = decode(over_udp(b"\x08" + bytes(7) + ether, 1234, 4789))
    assert five(d)[3:] == (40000, 443) and outer_five(decoder)[0][1] == "vxlan"
    decoder, d = decode(over_udp(b"\x00\x00\x65\x58" + bytes(4) + ether, 1234, 6081))
    assert five(d)[3:] == (40000, 443) and outer_five(decoder)[0][1] == "geneve"


def test_malformed_vxlan_is_counted_and_stays_plain() -> None:
    decoder, d = decode(over_udp(bytes(8) + g.ethernet(MAC_B, MAC_A, 0x0800, inner4()), 1, 4789))
    assert decoder.tunnels["vxlan_malformed"] == 1 and five(d)[3:] == (1, 4789)


def test_gre_in_udp_has_an_outer_flow_without_service() -> None:
    decoder, d = decode(over_udp(b"\x00\x00\x08\x00" + inner4(), 36527, 4754))
    assert five(d)[3:] == (40000, 443)
    assert outer_five(decoder) == [(("192.0.2.1", "192.0.2.2", 17, 36527, 4754), None)]


def test_the_outer_list_starts_afresh_with_each_walk() -> None:
    decoder = Decoder()
    frame = over_udp(gtp(inner4()), 2152, 2152)
    for _ in range(3):
        decoder.decode(1, frame, len(frame), 1.0)
    assert len(decoder.outer) == 1


def test_tunnel_kind_prefers_the_destination_port() -> None:
    data = b"\x08" + bytes(40)
    assert tunnel_kind(data, 0, len(data), 2152, 3544) is TEREDO
    assert tunnel_kind(data, 0, len(data), 3544, 2152) is GTPV1
    assert tunnel_kind(b"\x41\x52\x11", 0, 3, 1, 2) is AYIYA
    assert tunnel_kind(b"\x41\x52\x12", 0, 3, 1, 2) is None


def test_tunnel_header_offsets() -> None:
    data = ORIGIN + inner6()
    assert teredo(data, 0, len(data)) == TunnelHeader(8, Payload.IP)
    bubble = g.ipv6(V6_SRC, V6_DST, 59, b"")
    assert teredo(bubble, 0, 40) == TunnelHeader(0, Payload.NONE)


def test_ipv6_no_next_header_carries_no_flow() -> None:
    pkt = g.ipv6(g.ip_bytes("fd00::1"), g.ip_bytes("fd00::2"), 59, b"")
    decoder, d = decode(g.ethernet(MAC_B, MAC_A, 0x86DD, pkt))
    assert d is None and decoder.non_ip == {"ipv6_no_next": 1} and not decoder.failures


# -- data-centre link headers ----------------------------------------------------------------


def _ether(etype: int, rest: bytes) -> bytes:
    return g.ethernet(MAC_B, MAC_A, etype, rest)


def _vlan(vid: int, etype: int) -> bytes:
    return struct.pack("!HH", vid, etype)


def _vntag(etype: int) -> bytes:
    return b"\x00\x00\x00\x33" + struct.pack("!H", etype)


def _customer(rest: bytes, etype: int = 0x0800) -> bytes:
    return g.ethernet(b"\x0a" * 6, b"\x0c" * 6, etype, rest)


@pytest.mark.parametrize(
    ("name", "frame", "vlan"),
    [
        ("vntag", _ether(0x8926, _vntag(0x0800) + inner4()), -1),
        (
            "vlan-vntag-vlan",
            _ether(0x8100, _vlan(250, 0x8926) + _vntag(0x8100) + _vlan(251, 0x0800) + inner4()),
            251,
        ),
        ("pbb", _ether(0x88E7, b"\x00\x1e\xbb\x30" + _customer(inner4())), -1),
        (
            "vlan-pbb",
            _ether(0x8100, _vlan(10, 0x88E7) + b"\x00\x1e\xbb\x30" + _customer(inner4())),
            -1,
        ),
        (
            "pbb-customer-vlan",
            _ether(0x88E7, b"\x00\x1e\xbb\x30" + _customer(_vlan(7, 0x0800) + inner4(), 0x8100)),
            7,
        ),
        ("fabricpath", _ether(0x8903, b"\x00\x3f" + _customer(inner4())), -1),
        (
            "fabricpath-vlan",
            _ether(0x8903, b"\x00\x3f" + _customer(_vlan(30, 0x0800) + inner4(), 0x8100)),
            30,
        ),
        (
            "vlan-fabricpath",
            _ether(0x8100, _vlan(9, 0x8903) + b"\x00\x3f" + _customer(inner4())),
            -1,
        ),
    ],
)
def test_data_centre_link_headers(name: str, frame: bytes, vlan: int) -> None:
    _decoder, d = decode(frame)
    assert five(d) == ("10.20.0.11", "175.16.199.1", 17, 40000, 443), name
    assert d is not None and d[14] == vlan, name
    if name.startswith(("pbb", "vlan-pbb", "fabricpath", "vlan-fabricpath")):
        assert frame[d[13] : d[13] + 6] == b"\x0a" * 6, name  # the customer's MACs


def test_truncated_vntag_is_counted() -> None:
    decoder, d = decode(MAC_B + MAC_A + b"\x89\x26\x00\x00\x00")
    assert d is None and decoder.failures == {"vntag_truncated": 1}


def test_mac_in_mac_nesting_is_bounded() -> None:
    frame = _ether(0x88E7, (b"\x00\x1e\xbb\x30" + b"\x0a" * 12 + b"\x88\xe7") * 5000 + inner4())
    decoder, d = decode(frame)
    assert d is None and decoder.failures == {"tunnel_too_deep": 1}


def test_pseudowire_nesting_is_bounded() -> None:
    eth = b"\x12" * 12
    frame = eth + b"\x88\x47" + (b"\x00\x01\x01\x40" + eth + b"\x88\x47") * 3000
    decoder, d = decode(frame)
    assert d is None and decoder.failures == {"tunnel_too_deep": 1}
    assert MAX_TUNNEL_DEPTH < 3000


# -- fragmented tunnel datagrams ---------------------------------------------------------------


def gtp_fragments(ident: int = 5) -> tuple[list[bytes], int]:
    """A GTP-U datagram carrying a 1,400-byte inner packet, in IPv4 fragments; and the
    whole datagram's IP length."""
    udp = g.udp_datagram(OUT_A, OUT_B, 2152, 2152, gtp(inner4(b"x" * 1400)))
    packets = g.ipv4_fragments(OUT_A, OUT_B, 17, udp, mtu=600, ident=ident)
    return [g.ethernet(MAC_B, MAC_A, 0x0800, p) for p in packets], 20 + len(udp)


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 1, 0), (1, 0, 2)])
def test_a_fragmented_tunnel_datagram_counts_once_whole(order: tuple[int, ...]) -> None:
    frames, total = gtp_fragments()
    assert len(frames) == 3
    decoder = Decoder()
    outs = [decoder.decode(1, frames[i], len(frames[i]), 1.0 + n) for n, i in enumerate(order)]
    assert outs == [None, None, None] and not decoder.failures
    assert [five(hop.d) for hop in decoder.outer] == [("192.0.2.1", "192.0.2.2", 17, 2152, 2152)]
    assert decoder.outer[0].d[5] == total  # the whole datagram's IP length, as Zeek counts it
    ((_, inner),) = decoder.released
    assert five(inner) == ("10.20.0.11", "175.16.199.1", 17, 40000, 443)
    assert inner[11] == 1400 and inner[12][inner[10] : inner[10] + 4] == b"xxxx"
    assert decoder.tunnels == {"outer_packets": 1, "fragments_folded": 2}


def test_an_incomplete_tunnel_datagram_is_folded_not_lost_track_of() -> None:
    frames, _ = gtp_fragments()
    decoder = Decoder()
    for f in frames[:2]:
        assert decoder.decode(1, f, len(f), 1.0) is None
    assert decoder.tunnels["fragments_folded"] == 2 and not decoder.outer


def test_a_snaplen_cut_fragment_abandons_the_rebuild() -> None:
    frames, _ = gtp_fragments()
    decoder = Decoder()
    assert decoder.decode(1, frames[0], len(frames[0]), 1.0) is None
    cut = frames[1][:100]
    d = decoder.decode(1, cut, len(frames[1]), 2.0)
    assert five(d) == ("192.0.2.1", "192.0.2.2", 17, 2152, 2152)  # its outer flow, as before
    assert decoder.reassembler.counts()["dropped"] == 1
    d = decoder.decode(1, frames[2], len(frames[2]), 3.0)
    assert five(d)[3:] == (2152, 2152) and not decoder.outer


def test_a_fragmented_gre_datagram_counts_once_whole() -> None:
    gre = b"\x00\x00\x08\x00" + inner4(b"y" * 1400)
    packets = g.ipv4_fragments(OUT_A, OUT_B, 47, gre, mtu=600, ident=6)
    decoder = Decoder()
    for p in packets:
        frame = g.ethernet(MAC_B, MAC_A, 0x0800, p)
        assert decoder.decode(1, frame, len(frame), 1.0) is None
    ((_, inner),) = decoder.released
    assert five(inner)[3:] == (40000, 443) and inner[11] == 1400
    assert decoder.tunnels == {"outer_packets": 0, "fragments_folded": len(packets) - 1}
    assert not decoder.outer and not decoder.failures
