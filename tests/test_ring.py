"""The compiled ring conversion (netwatch/_ring.c) against the Python one, byte for byte.

A TPACKET_V3 block becomes classic pcap records in ``netwatch._ring.block_records`` (C) and
in ``netwatch.capture.afpacket.block_records_py`` (the reference and the fallback). On
synthetic blocks (VLAN tag valid with and without a TPID, none, a priority tag, frames at
odd offsets, blocks at odd places in the buffer, corrupt headers, empty blocks) both give
the records the block's frames call for, and identical bytes; random bytes as a block give
identical output from both, bounded, and the same whatever surrounds the block (nothing
outside it is read: run under ``./dev sanitize`` for ASan/UBSan). On a real ring on the
loopback interface and on a veth pair in a network namespace, the same handed-over block
converts identically with both, and 802.1Q/802.1ad tags the kernel stripped come back as
they were sent.

Skips where the extension cannot be there (NETWATCH_PURE=1, no C compiler); fails when a
compiler is here and the extension was not built.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netwatch.capture import afpacket
from netwatch.capture.afpacket import (
    TP_STATUS_USER,
    TP_STATUS_VLAN_TPID_VALID,
    TP_STATUS_VLAN_VALID,
    Ring,
    RingSettings,
    block_records_py,
    wait_readable,
)
from netwatch.capture.bpf import BpfError, compile_filter
from netwatch.capture.pcap import Buffer
from tests.profile import examples

BLOCK_HEADER = 48  # tpacket_block_desc as the kernel lays it out (with the stamps)
HDR3 = 38  # the part of tpacket3_hdr the conversion reads
HDR3_FULL = 48
TPACKET_ALIGN = 16
PCAP_REC = struct.Struct("<IIII")
Convert = Callable[[Buffer, int, int], tuple[bytes, int, float]]


def _compiled() -> Convert | None:
    try:
        from netwatch._ring import block_records  # noqa: PLC0415 (optional)
    except ImportError:
        return None
    return block_records


_C = _compiled()


@pytest.fixture
def c_convert() -> Convert:
    if _C is not None:
        return _C
    if os.environ.get("NETWATCH_PURE") == "1":
        pytest.skip("NETWATCH_PURE=1 forces the pure-Python path")
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler here: netwatch._ring is not built")
    pytest.fail("a C compiler is here but netwatch._ring is not built (pip install -e .)")


# ---------------------------------------------------------------------------- synthetic blocks


class Frame(NamedTuple):
    """One frame to lay into a synthetic block (fields of tpacket3_hdr)."""

    data: bytes
    sec: int = 1_700_000_000
    nsec: int = 123_456_789
    wirelen: int | None = None  # None: len(data)
    status: int = TP_STATUS_USER
    tci: int = 0
    tpid: int = 0
    mac: int = 66  # where the frame starts after its header (the kernel's is 66 or 82)
    next: int | None = None  # None: the next frame right after this one, aligned


def block(frames: list[Frame], *, first: int = BLOCK_HEADER, num: int | None = None) -> bytes:
    """A TPACKET_V3 block holding ``frames`` (num_pkts ``num``, default their count)."""
    body = bytearray()
    offs = []
    off = first
    for f in frames:
        offs.append(off)
        size = f.mac + len(f.data)
        nxt = f.next if f.next is not None else -(-size // TPACKET_ALIGN) * TPACKET_ALIGN
        hdr = struct.pack(
            "=IIIIIIHHIIHH",
            nxt,
            f.sec,
            f.nsec,
            len(f.data),
            len(f.data) if f.wirelen is None else f.wirelen,
            f.status,
            f.mac,
            (f.mac + 14) & 0xFFFF,
            0,
            f.tci,
            f.tpid,
            0,
        )
        need = off + max(f.mac + len(f.data), HDR3_FULL)
        body.extend(bytes(max(0, need - len(body))))
        body[off : off + len(hdr)] = hdr
        body[off + f.mac : off + f.mac + len(f.data)] = f.data
        off += max(nxt, 1)
    n = len(frames) if num is None else num
    desc = struct.pack("=IIIIIIQ", 3, 0, TP_STATUS_USER, n, first, len(body), 1)
    body.extend(bytes(max(0, BLOCK_HEADER - len(body))))
    body[: len(desc)] = desc
    return bytes(body)


def records(data: bytes) -> list[tuple[int, int, int, bytes]]:
    """(sec, nsec, wirelen, frame) of each pcap record in ``data``."""
    out = []
    off = 0
    while off < len(data):
        sec, nsec, caplen, wirelen = PCAP_REC.unpack_from(data, off)
        off += PCAP_REC.size
        out.append((sec, nsec, wirelen, data[off : off + caplen]))
        assert len(out[-1][3]) == caplen
        off += caplen
    return out


def eth(payload: bytes = b"\x00" * 46, ethertype: int = 0x0800) -> bytes:
    return b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02" + ethertype.to_bytes(2) + payload


def both(c_convert: Convert, buf: bytes, base: int = 0, size: int | None = None) -> list[bytes]:
    """The records of the block from both conversions, which must agree; returns the frames."""
    size = len(buf) - base if size is None else size
    got_c = c_convert(buf, base, size)
    got_py = block_records_py(buf, base, size)
    assert got_c == got_py
    assert got_c[1] == len(records(got_c[0]))
    return [r[3] for r in records(got_c[0])]


def test_plain_frames_come_out_as_records(c_convert: Convert) -> None:
    frames = [eth(bytes([i]) * (46 + i)) for i in range(5)]
    buf = block([Frame(f, sec=10 + i, nsec=i, wirelen=len(f) + i) for i, f in enumerate(frames)])
    data, count, last = c_convert(buf, 0, len(buf))
    assert count == 5
    assert last == 14 + 4e-9
    assert records(data) == [(10 + i, i, len(f) + i, f) for i, f in enumerate(frames)]
    assert both(c_convert, buf) == frames


@pytest.mark.parametrize(
    ("status", "tci", "tpid", "tag"),
    [
        (TP_STATUS_VLAN_VALID, 0x0064, 0, b"\x81\x00\x00\x64"),  # no TPID: 802.1Q
        (TP_STATUS_VLAN_VALID | TP_STATUS_VLAN_TPID_VALID, 0x2064, 0x88A8, b"\x88\xa8\x20\x64"),
        (TP_STATUS_VLAN_VALID | TP_STATUS_VLAN_TPID_VALID, 0, 0x8100, b"\x81\x00\x00\x00"),
        (TP_STATUS_VLAN_VALID, 0, 0x88A8, b""),  # priority 0, VLAN 0 and no TPID: no tag
        (TP_STATUS_VLAN_TPID_VALID, 0x0064, 0x8100, b""),  # not VLAN_VALID: no tag
        (0, 0x0064, 0x8100, b""),
    ],
)
def test_a_stripped_tag_is_put_back_after_the_macs(
    c_convert: Convert, status: int, tci: int, tpid: int, tag: bytes
) -> None:
    frame = eth(b"\x45" + bytes(45))
    buf = block([Frame(frame, wirelen=1514, status=TP_STATUS_USER | status, tci=tci, tpid=tpid)])
    data, count, _last = c_convert(buf, 0, len(buf))
    assert count == 1
    ((_s, _n, wirelen, got),) = records(data)
    assert got == frame[:12] + tag + frame[12:]
    assert wirelen == 1514 + len(tag)
    both(c_convert, buf)


@pytest.mark.parametrize("snap", [0, 1, 11, 12, 13])
def test_a_tag_on_a_frame_shorter_than_the_macs(c_convert: Convert, snap: int) -> None:
    frame = bytes(range(1, snap + 1))
    st_ = TP_STATUS_USER | TP_STATUS_VLAN_VALID
    buf = block([Frame(frame, status=st_, tci=7), Frame(eth())])
    got = both(c_convert, buf)
    assert got[0] == frame[:12] + b"\x81\x00\x00\x07" + frame[12:]
    assert got[1] == eth()


def test_odd_offsets(c_convert: Convert) -> None:
    frames = [Frame(eth(bytes(47)), mac=67, next=67 + 61 + 3), Frame(eth(bytes(51)), mac=41)]
    buf = block(frames, first=BLOCK_HEADER + 5)
    for lead in (0, 1, 7, 4093):
        padded = os.urandom(lead) + buf + os.urandom(13)
        assert both(c_convert, padded, lead, len(buf)) == [eth(bytes(47)), eth(bytes(51))]


def test_an_empty_block(c_convert: Convert) -> None:
    buf = block([])
    assert c_convert(buf, 0, len(buf)) == (b"", 0, 0.0)
    assert block_records_py(buf, 0, len(buf)) == (b"", 0, 0.0)
    for size in (0, 1, 19, 20, 37, 38):
        assert c_convert(buf, 0, size) == block_records_py(buf, 0, size) == (b"", 0, 0.0)


def patched(buf: bytes, off: int, value: int) -> bytes:
    """``buf`` with the 32-bit field at ``off`` set to ``value``."""
    out = bytearray(buf)
    struct.pack_into("=I", out, off, value)
    return bytes(out)


def _corrupt_cases() -> Iterator[tuple[str, bytes, int]]:
    """(what, block, frames expected before the walk stops)."""
    ok = Frame(eth())
    three = block([ok, ok, ok])
    yield "next 0 before the last", patched(three, BLOCK_HEADER, 0), 1
    yield "next inside the frame", patched(three, BLOCK_HEADER, 70), 1
    yield (
        "next below a header",
        patched(block([Frame(b"", mac=0, next=48), ok]), BLOCK_HEADER, 8),
        1,
    )
    yield "next past the block", patched(three, BLOCK_HEADER, 1 << 30), 1
    yield "num far above the frames", block([ok, ok], num=0xFFFF_FFFF), 2
    yield "first past the block", patched(three, 16, 1 << 20), 0
    yield "first inside the last header", block([ok], first=10_000)[:10_020], 0
    cut = block([ok, ok])
    yield "last frame cut by the block end", cut[: len(cut) - 1], 1
    yield "header cut by the block end", cut[: BLOCK_HEADER + 128 + 20], 1
    one_short = block([ok, Frame(b"", mac=0)])
    yield "header one byte short", one_short[: BLOCK_HEADER + 128 + HDR3 - 1], 1
    yield "header just fits", one_short[: BLOCK_HEADER + 128 + HDR3], 2
    yield "mac past the block", block([ok, ok._replace(mac=0xFFFF)])[:400], 1
    big_snap = bytearray(block([ok, ok]))
    struct.pack_into("=I", big_snap, BLOCK_HEADER + 128 + 12, 0xFFFF_FFFF)
    yield "snaplen past the block", bytes(big_snap), 1
    wire = block([Frame(eth(), wirelen=0xFFFF_FFFF, status=1 | TP_STATUS_VLAN_VALID, tci=9)])
    yield "wire length at the top with a tag", wire, 1
    big_tci = block([Frame(eth(), status=1 | TP_STATUS_VLAN_VALID, tci=0x1_0000)])
    yield "a TCI above 16 bits", big_tci, 1


@pytest.mark.parametrize(("what", "buf", "expected"), list(_corrupt_cases()))
def test_corrupt_blocks_stop_the_walk_inside_the_block(
    c_convert: Convert, what: str, buf: bytes, expected: int
) -> None:
    data, count, _last = c_convert(buf, 0, len(buf))
    assert count == expected, what
    assert len(data) <= 2 * len(buf)
    both(c_convert, buf)


def test_frames_packed_edge_to_edge_all_tagged(c_convert: Convert) -> None:
    # the densest block there can be: frames over their own headers (tp_mac 0), each next
    # header right after the data, every one with a tag to put back: the output is the
    # largest a block of this size can give, and the C must not run short of room
    size, snap = 4096, HDR3
    buf = bytearray(size)
    count = (size - BLOCK_HEADER) // snap
    struct.pack_into("=IIIII", buf, 0, 3, 0, TP_STATUS_USER, count, BLOCK_HEADER)
    st_ = TP_STATUS_USER | TP_STATUS_VLAN_VALID
    for i in range(count):
        off = BLOCK_HEADER + i * snap
        struct.pack_into("=IIIIIIHHIIH", buf, off, snap, i, 0, snap, snap, st_, 0, 0, 0, 5, 0)
    data, got, _last = c_convert(bytes(buf), 0, size)
    assert got == count
    assert len(data) == count * (PCAP_REC.size + snap + 4)
    both(c_convert, bytes(buf))


def test_a_block_outside_the_buffer_is_refused(c_convert: Convert) -> None:
    buf = block([Frame(eth())])
    for base, size in ((-1, 10), (0, len(buf) + 1), (len(buf), 1), (5, -1)):
        with pytest.raises(ValueError, match="not inside the ring"):
            c_convert(buf, base, size)
        with pytest.raises(ValueError, match="not inside the ring"):
            block_records_py(buf, base, size)


@settings(max_examples=examples(400), deadline=None, derandomize=True)
@given(st.binary(min_size=0, max_size=3000), st.integers(0, 2**32 - 1))
def test_random_blocks_give_the_same_bounded_output(raw: bytes, num: int) -> None:
    if _C is None:
        pytest.skip("netwatch._ring is not built")
    blk = bytearray(raw)
    if len(blk) >= 20:  # a plausible frame count and first offset, else most walks stop at once
        struct.pack_into("=II", blk, 12, num % 64, BLOCK_HEADER if num & 64 else num % 200)
    data = bytes(blk)
    got = _C(data, 0, len(data))
    assert got == block_records_py(data, 0, len(data))
    assert got[1] <= len(data) // HDR3
    assert len(got[0]) <= len(data) + got[1] * (PCAP_REC.size + 4)
    # whatever surrounds the block, the result is the same: nothing outside it is read
    for fill in (b"\x00", b"\xff"):
        framed = fill * 64 + data + fill * 64
        assert _C(framed, 64, len(data)) == got


def test_the_block_is_read_in_place_from_a_writable_buffer(c_convert: Convert) -> None:
    buf = bytearray(b"\xee" * 100) + bytearray(block([Frame(eth())]))
    data, count, _ = c_convert(buf, 100, len(buf) - 100)  # type: ignore[arg-type]
    assert count == 1 and records(data)[0][3] == eth()
    buf.extend(b"x")  # the buffer export was released


def test_netwatch_pure_forces_the_python_conversion() -> None:
    code = (
        "from netwatch.capture import afpacket as a;"
        "print(a.RING_CONVERSION, a.block_records is a.block_records_py)"
    )
    env = {**os.environ, "NETWATCH_PURE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["python", "True"]
    if _C is not None and os.environ.get("NETWATCH_PURE") != "1":
        assert afpacket.RING_CONVERSION == "c"
        assert afpacket.block_records is _C


# ---------------------------------------------------------------------------- a real ring


def _vlan_frame(src: bytes, tags: list[tuple[int, int]], body: bytes) -> bytes:
    tagged = b"".join(tpid.to_bytes(2) + tci.to_bytes(2) for tpid, tci in tags)
    return b"\x02\x6e\x77\x00\x00\x01" + src + tagged + b"\x88\xb5" + body


def tagged_frames(src: bytes) -> list[bytes]:
    """Frames from ``src`` with no tag, one tag, two tags (802.1ad outer) and a priority tag."""
    return [
        _vlan_frame(src, [], b"plain" + bytes(50)),
        _vlan_frame(src, [(0x8100, 0x0064)], b"one tag" + bytes(50)),
        _vlan_frame(src, [(0x88A8, 0x2005), (0x8100, 0x0007)], b"q-in-q" + bytes(50)),
        _vlan_frame(src, [(0x8100, 0x0000)], b"priority tag" + bytes(50)),
    ]


def ring_round_trip(convert: Convert, capture: str, inject: str, src: bytes) -> list[bytes]:
    """Send :func:`tagged_frames` on ``inject``, read them from a ring on ``capture``
    (each handed-over block converted by ``convert`` and by the Python, which must agree),
    and return every frame seen."""
    mac = ":".join(f"{b:02x}" for b in src)
    try:
        bpf = compile_filter(f"ether src {mac}")
    except BpfError as exc:
        pytest.skip(f"libpcap is needed to compile the filter: {exc}")
    sent = tagged_frames(src)
    ring = Ring(capture, RingSettings(ring_mb=2, block_kb=64, retire_ms=10, bpf=bpf))
    try:
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as out:
            out.bind((inject, 0))
            for frame in sent:
                out.send(frame)
        seen: list[bytes] = []
        deadline = time.monotonic() + 3.0
        while not all(f in seen for f in sent):
            left = deadline - time.monotonic()
            assert left > 0, f"frames not seen within 3 s: {seen}"
            if not ring.ready():
                wait_readable([ring], left)
                continue
            base = ring._cur * ring.block_size
            got = convert(ring.ring, base, ring.block_size)
            assert got == block_records_py(ring.ring, base, ring.block_size)
            blk = ring.read_block_pcap()
            assert blk is not None and blk.count == got[1]
            seen += [r[3] for r in records(got[0])]
    finally:
        ring.close()
    return seen


def test_a_real_block_converts_identically_and_keeps_the_tags(c_convert: Convert) -> None:
    if os.geteuid() != 0:
        pytest.skip("an AF_PACKET ring needs root (CAP_NET_RAW)")
    src = b"\x02\x6e\x77" + os.urandom(3)
    seen = ring_round_trip(c_convert, "lo", "lo", src)
    # loopback shows each frame twice: going out (as sent) and coming in (tag stripped by
    # the kernel, put back by the conversion): both equal the frame sent
    for frame in tagged_frames(src):
        assert seen.count(frame) == 2, frame


VETH_CHILD = """
import json, os, sys
sys.path.insert(0, sys.argv[1])
from netwatch._ring import block_records
from tests.test_ring import ring_round_trip
src = bytes.fromhex(sys.argv[4])
print(json.dumps([f.hex() for f in ring_round_trip(block_records, sys.argv[2], sys.argv[3], src)]))
"""


def test_a_real_veth_block_converts_identically_and_keeps_the_tags(c_convert: Convert) -> None:
    from tests.integration.netns import netns_unavailable, veth_namespace  # noqa: PLC0415

    del c_convert  # the child imports it: this only skips where it is not built
    why = netns_unavailable()
    if why:
        pytest.skip(why)
    src = b"\x02\x6e\x77" + os.urandom(3)
    root = str(Path(__file__).resolve().parent.parent)
    with veth_namespace("nwr") as ns:
        out = ns.run(sys.executable, "-c", VETH_CHILD, root, ns.capture, ns.inject, src.hex())
    seen = [bytes.fromhex(f) for f in json.loads(out.stdout.decode().strip().splitlines()[-1])]
    # on the veth's far end each frame arrives once, its outer tag stripped by the kernel
    # and put back by the conversion
    assert sorted(seen) == sorted(tagged_frames(src))
