"""The decoder's contract under hostile input: a packet or nothing, never an exception.

Each hypothesis example draws a valid frame template (every link type, tag and tunnel form
the decoder handles, the UDP tunnels and data-centre link headers included) and a seed; the
seed drives a batch of 100 mutations of the template (truncations, byte flips, random
insertions, random frames, bogus wire lengths). With 1,000 examples CI checks 100,000
generated frames per run in a few seconds. The outer hops of tunnels are checked too.
"""

from __future__ import annotations

import random
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netwatch.decode.frames import Decoded, Decoder
from netwatch.testing import pcapgen as g
from tests.profile import examples

CASES_PER_EXAMPLE = 100
EXAMPLES = examples(1_000)

_R4 = g.Route.of("bc:ad:28:00:00:01", "10.20.0.11", "00:11:22:33:44:55", "175.16.199.1", (20,))
_R6 = g.Route.of("bc:ad:28:00:00:01", "fd00::11", "00:11:22:33:44:55", "2001:218::1")
_OUT_SRC, _OUT_DST = g.ip_bytes("192.0.2.1"), g.ip_bytes("192.0.2.2")
_SNAP = b"\xaa\xaa\x03\x00\x00\x00\x08\x00"


def _outer_gre(proto: int, payload: bytes, flags: int = 0, extra: bytes = b"") -> bytes:
    gre = struct.pack("!HH", flags, proto) + extra + payload
    return g.ethernet(b"\x02" * 6, b"\x04" * 6, 0x0800, g.ipv4(_OUT_SRC, _OUT_DST, 47, gre))


def _over_udp(sport: int, dport: int, payload: bytes) -> bytes:
    udp = g.udp_datagram(_OUT_SRC, _OUT_DST, sport, dport, payload)
    return g.ethernet(b"\x02" * 6, b"\x04" * 6, 0x0800, g.ipv4(_OUT_SRC, _OUT_DST, 17, udp))


def _tunnel_templates(plain: bytes, udp6: bytes) -> list[tuple[int, bytes]]:
    """Teredo (bare, origin, authentication), AYIYA, GTPv1-U (plain, extension header),
    GRE in UDP, and the data-centre link headers (VN-Tag, PBB, FabricPath)."""
    origin = b"\x00\x00\x12\x34" + bytes(4)
    auth = b"\x00\x01\x01\x01" + b"i" + b"a" + bytes(9)
    ip6 = udp6[14:]
    ayiya = b"\x41\x52\x11\x29" + bytes(4 + 16 + 20)
    gtp_ext = b"\x36\xff" + struct.pack("!HI", 12 + len(plain) - 14, 1)
    gtp_ext += b"\x00\x01\x00\x85" + b"\x02\x10\x05\x00\x00\x00\x00\x00"
    customer = g.ethernet(b"\x0a" * 6, b"\x0c" * 6, 0x0800, plain[14:])
    return [
        (1, _over_udp(3797, 3544, ip6)),
        (1, _over_udp(3544, 3797, origin + ip6)),
        (1, _over_udp(3797, 32900, auth + origin + ip6)),
        (1, _over_udp(1000, 5072, ayiya + ip6)),
        (
            1,
            _over_udp(
                2152, 2152, b"\x30\xff" + struct.pack("!HI", len(plain) - 14, 1) + plain[14:]
            ),
        ),
        (1, _over_udp(2152, 2152, gtp_ext + plain[14:])),
        (1, _over_udp(1, 4754, b"\x00\x00\x08\x00" + plain[14:])),
        (1, g.ethernet(b"\x01" * 6, b"\x02" * 6, 0x8926, b"\x00\x00\x00\x33\x81\x00" + plain[12:])),
        (1, g.ethernet(b"\x01" * 6, b"\x02" * 6, 0x88E7, b"\x00\x1e\xbb\x30" + customer)),
        (1, g.ethernet(b"\x01" * 6, b"\x02" * 6, 0x8903, b"\x00\x3f" + customer)),
    ]


def _templates() -> list[tuple[int, bytes]]:
    tcp = g.tcp_frame(_R4, 5000, 443, seq=1, ack=2, flags=0x18, payload=b"\x16\x03\x01" + bytes(60))
    udp = g.udp_frame(_R4, 5000, 53, b"\x00" * 40)
    udp6 = g.udp_frame(_R6, 5000, 53, b"\x00" * 40)
    tcp6 = g.tcp_frame(_R6, 5000, 80, seq=1, ack=2, flags=0x02)
    icmp = g.icmp_echo_frame(_R4, 1, 1, b"ping")
    frag = g.udp_fragment_frames(_R4, 1, 2, b"z" * 2000, ident=3)
    plain = g.udp_frame(g.Route(_R4.src_mac, _R4.dst_mac, _R4.src_ip, _R4.dst_ip), 1, 2, b"x" * 30)
    vxlan = g.ethernet(
        b"\x02" * 6,
        b"\x04" * 6,
        0x0800,
        g.ipv4(
            _OUT_SRC,
            _OUT_DST,
            17,
            g.udp_datagram(_OUT_SRC, _OUT_DST, 9, 4789, b"\x08" + bytes(7) + plain),
        ),
    )
    geneve = g.ethernet(
        b"\x02" * 6,
        b"\x04" * 6,
        0x0800,
        g.ipv4(
            _OUT_SRC,
            _OUT_DST,
            17,
            g.udp_datagram(_OUT_SRC, _OUT_DST, 9, 6081, b"\x01\x00\x65\x58" + bytes(8) + plain),
        ),
    )
    return [
        (1, tcp),
        (1, udp),
        (1, udp6),
        (1, tcp6),
        (1, icmp),
        (1, frag[0]),
        (1, frag[1]),
        (1, _outer_gre(0x88BE, bytes(8) + plain, 0x1000, bytes(4))),
        (1, _outer_gre(0x22EB, bytes(12) + plain, 0x1000, bytes(4))),
        (1, _outer_gre(0x0800, plain[14:], 0xB000, bytes(12))),
        (1, _outer_gre(0x880B, b"\xff\x03\x00\x21" + plain[14:], 0x3001, bytes(8))),
        (1, vxlan),
        (1, geneve),
        (1, g.ethernet(b"\x01" * 6, b"\x02" * 6, 0x8847, b"\x00\x01\x01\x40" + plain[14:])),
        (
            1,
            g.ethernet(
                b"\x01" * 6, b"\x02" * 6, 0x8864, b"\x11\x00\x00\x01\x00\x00\x00\x21" + plain[14:]
            ),
        ),
        (113, b"\x00\x00\x00\x01\x00\x06" + bytes(8) + b"\x08\x00" + plain[14:]),
        (276, b"\x86\xdd\x00\x00" + bytes(4) + b"\x00\x01\x00\x06" + bytes(8) + udp6[14:]),
        (0, struct.pack("<I", 30) + udp6[14:]),
        (101, plain[14:]),
        *_tunnel_templates(plain, udp6),
        (9, b"\xff\x03\x00\x21" + plain[14:]),
        (127, b"\x00\x00\x0c\x00" + bytes(8) + b"\x88\x01" + bytes(24) + _SNAP + plain[14:]),
        (105, b"\x08\x03" + bytes(28) + _SNAP + plain[14:]),
    ]


TEMPLATES = _templates()


def _mutate(rng: random.Random, frame: bytes) -> bytes:
    kind = rng.randrange(4)
    if kind == 0:
        return frame[: rng.randrange(len(frame) + 1)]
    if kind == 1:
        buf = bytearray(frame)
        for _ in range(rng.randrange(1, 5)):
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        return bytes(buf)
    if kind == 2:
        at = rng.randrange(len(frame) + 1)
        return frame[:at] + rng.randbytes(rng.randrange(17)) + frame[at:]
    return rng.randbytes(rng.randrange(129))


def _check(d: Decoded | None, frame: bytes) -> None:
    if d is None:
        return
    src, dst, proto, sport, dport, ip_len, _fl, _seq, _ack, _win, off, plen, fr, mac, vlan = d
    assert len(src) in (4, 16) and len(dst) == len(src)
    assert 0 <= proto <= 255 and 0 <= sport <= 65535 and 0 <= dport <= 65535
    assert ip_len >= 0 and plen >= 0
    assert fr is frame
    assert off == -1 or 0 <= off <= len(frame) + 65535
    assert -1 <= mac < len(frame) and -1 <= vlan <= 4095


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.sampled_from(TEMPLATES), st.integers(0, 2**32 - 1))
def test_mutated_frames_never_raise(template: tuple[int, bytes], seed: int) -> None:
    linktype, frame0 = template
    rng = random.Random(seed)
    decoder = Decoder(max_fragments=16)
    for _ in range(CASES_PER_EXAMPLE):
        frame = _mutate(rng, frame0)
        wirelen = rng.randrange(70_000) if rng.random() < 0.1 else len(frame)
        d = decoder.decode(linktype, frame, wirelen, 1.0)
        _check(d, frame)
        for _, released in decoder.released:
            _check(released, released[12])
        decoder.released.clear()
        for hop in decoder.outer:
            _check(hop.d, frame)
            assert hop.d[2] == 17 and hop.d[10] == -1
        decoder.outer.clear()
    decoder.frags.flush()


def test_every_prefix_of_every_template_is_safe() -> None:
    decoder = Decoder()
    for linktype, template in TEMPLATES:
        for cut in range(len(template) + 1):
            frame = template[:cut]
            _check(decoder.decode(linktype, frame, cut, 0.0), frame)


@settings(max_examples=examples(300), deadline=None, derandomize=True)
@given(st.sampled_from(TEMPLATES), st.integers(0, 2**32 - 1))
def test_inline_fast_path_agrees_with_the_general_walk(
    template: tuple[int, bytes], seed: int
) -> None:
    linktype, frame0 = template
    rng = random.Random(seed)
    fast, slow = Decoder(), Decoder()
    for _ in range(CASES_PER_EXAMPLE):
        frame = _mutate(rng, frame0) if rng.random() < 0.5 else frame0
        wirelen = len(frame) + (rng.randrange(1500) if rng.random() < 0.2 else 0)
        assert fast.decode(linktype, frame, wirelen, 1.0) == slow._walk(
            linktype, frame, wirelen, 1.0
        )
        assert fast.outer == slow.outer
        fast.outer.clear()
        slow.outer.clear()
    assert fast.failures == slow.failures
