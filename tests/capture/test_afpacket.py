"""The TPACKET_V3 ring: geometry, and a real ring on the loopback interface."""

from __future__ import annotations

import errno
import mmap
import os
import socket
import struct
import time
from collections.abc import Iterator

import pytest

from netwatch.capture import afpacket
from netwatch.capture.afpacket import (
    Ring,
    RingError,
    RingSettings,
    _block_geometry,
    fanout_group_id,
    interface_present,
    wait_readable,
)
from netwatch.capture.bpf import BpfError, compile_filter
from netwatch.capture.linktypes import LinkType
from netwatch.capture.pcap import Record
from netwatch.capture.source import Block

PCAP_REC = struct.Struct("<IIII")
TPACKET3_HDRLEN = 68  # tpacket3_hdr (48, aligned) + sockaddr_ll (20)
DEADLINE_S = 3.0

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="an AF_PACKET ring needs root (CAP_NET_RAW)"
)


# ---------------------------------------------------------------------------- geometry


@pytest.mark.parametrize("snaplen", [1, 64, 1500, 1920, 1921, 9000, 65_535, 262_144])
@pytest.mark.parametrize("block_kb", [4, 8, 64, 1024, 65_536])
@pytest.mark.parametrize("ring_mb", [1, 2, 64])
def test_block_geometry_meets_the_kernel_constraints(
    snaplen: int, block_kb: int, ring_mb: int
) -> None:
    s = RingSettings(snaplen=snaplen, ring_mb=ring_mb, block_kb=block_kb)
    block, count, frame = _block_geometry(s)
    assert block % mmap.PAGESIZE == 0 and block >= mmap.PAGESIZE
    assert frame & (frame - 1) == 0  # a power of two
    assert frame >= snaplen + TPACKET3_HDRLEN
    assert frame >= 2048
    assert frame <= block
    assert block % frame == 0  # the kernel wants whole frames per block
    assert count >= 2
    if block <= (ring_mb << 20) // 2:
        assert count == (ring_mb << 20) // block  # the ring uses the size asked for


def test_block_geometry_rounds_the_block_down_to_pages() -> None:
    page = mmap.PAGESIZE
    block, _count, frame = _block_geometry(RingSettings(snaplen=100, block_kb=64))
    assert (block, frame) == (64 * 1024 // page * page, 2048)
    block, count, _frame = _block_geometry(RingSettings(snaplen=100, block_kb=4, ring_mb=1))
    assert block == max(page, 4096)
    assert count == (1 << 20) // block


def test_block_geometry_grows_the_block_to_hold_one_frame() -> None:
    block, count, frame = _block_geometry(RingSettings(snaplen=65_535, block_kb=64, ring_mb=1))
    assert frame == 131_072
    assert block == 131_072
    assert count == 8


def test_a_tiny_ring_still_has_two_blocks() -> None:
    block, count, _frame = _block_geometry(RingSettings(snaplen=65_535, block_kb=4096, ring_mb=1))
    assert block == 4 << 20
    assert count == 2


def test_block_geometry_with_a_block_size_that_is_not_a_power_of_two() -> None:
    block, _count, frame = _block_geometry(RingSettings(snaplen=65_535, block_kb=1000))
    assert block % frame == 0


def test_interface_present() -> None:
    assert interface_present("lo")
    assert not interface_present("nw-none0")


def test_wait_readable_without_rings_returns_at_once() -> None:
    assert wait_readable([], 5.0) == []


# ---------------------------------------------------------------------------- a real ring


@pytest.fixture
def receiver() -> Iterator[tuple[socket.socket, int]]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock, sock.getsockname()[1]
    finally:
        sock.close()


def settings_for(port: int, fanout_group: int | None = None) -> RingSettings:
    try:
        bpf = compile_filter(f"udp and port {port}")
    except BpfError as exc:
        pytest.skip(f"libpcap is needed to compile the filter: {exc}")
    return RingSettings(
        snaplen=65_535, ring_mb=2, block_kb=64, retire_ms=10, bpf=bpf, fanout_group=fanout_group
    )


@pytest.fixture
def ring(receiver: tuple[socket.socket, int]) -> Iterator[Ring]:
    if os.geteuid() != 0:
        pytest.skip("an AF_PACKET ring needs root (CAP_NET_RAW)")
    r = Ring("lo", settings_for(receiver[1]))
    try:
        yield r
    finally:
        r.close()


def send(port: int, payloads: list[bytes]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
        for p in payloads:
            out.sendto(p, ("127.0.0.1", port))


def payloads(tag: bytes, n: int = 3) -> list[bytes]:
    return [tag + b"-%d-" % i + os.urandom(8).hex().encode() for i in range(n)]


def all_seen(frames: list[bytes], wanted: list[bytes]) -> bool:
    return all(any(f.endswith(p) for f in frames) for p in wanted)


def test_read_block_returns_the_frames_sent(
    ring: Ring, receiver: tuple[socket.socket, int]
) -> None:
    wanted = payloads(b"plain")
    t0 = time.time()
    send(receiver[1], wanted)
    records: list[Record] = []
    deadline = time.monotonic() + DEADLINE_S
    while not all_seen([r[3] for r in records], wanted):
        left = deadline - time.monotonic()
        assert left > 0, f"no block with the payloads within {DEADLINE_S} s: {records}"
        if not ring.ready():
            wait_readable([ring], left)
            continue
        got = ring.read_block()
        assert got is not None
        records += got
    t1 = time.time()
    for ts, linktype, wirelen, frame in records:
        assert linktype == int(LinkType.ETHERNET)
        assert wirelen == len(frame)  # small frames: nothing was cut
        assert t0 - 1 <= ts <= t1 + 1
        assert frame[12:14] == b"\x08\x00"  # IPv4 in Ethernet (lo has zero MACs)
        assert frame[14 + 9] == socket.IPPROTO_UDP
    for p in wanted:
        # loopback hands every datagram over once or twice (outgoing, then incoming)
        assert 1 <= sum(f.endswith(p) for _t, _l, _w, f in records) <= 2
    assert ring.stats.packets >= len(records)
    stats = ring.poll_kernel_stats()
    assert stats is ring.stats
    assert stats.kernel_drops >= 0 and stats.freezes >= 0
    assert ring.interface_drops() >= 0
    assert ring.pending_error() == 0


def parse_block(block: Block) -> list[tuple[int, int, int, bytes]]:
    m = block.mapped
    buf = bytes(m.buf)
    out = []
    off = m.start
    while off < m.end:
        sec, nsec, caplen, wirelen = PCAP_REC.unpack_from(buf, off)
        off += PCAP_REC.size
        out.append((sec, nsec, wirelen, buf[off : off + caplen]))
        assert len(out[-1][3]) == caplen
        off += caplen
    assert off == m.end
    return out


def test_read_block_pcap_lays_frames_out_as_pcap_records(
    ring: Ring, receiver: tuple[socket.socket, int]
) -> None:
    # first round through read_block, second through read_block_pcap: the ring advances
    for round_, reader in enumerate(("read_block", "read_block_pcap")):
        wanted = payloads(b"round%d" % round_)
        t0_ns = time.time_ns()
        send(receiver[1], wanted)
        frames: list[bytes] = []
        blocks: list[Block] = []
        deadline = time.monotonic() + DEADLINE_S
        while not all_seen(frames, wanted):
            left = deadline - time.monotonic()
            assert left > 0, f"round {round_}: payloads not seen within {DEADLINE_S} s"
            if not ring.ready():
                wait_readable([ring], left)
                continue
            if reader == "read_block":
                got = ring.read_block()
                assert got is not None
                frames += [r[3] for r in got]
                continue
            block = ring.read_block_pcap()
            assert block is not None
            blocks.append(block)
            t1_ns = time.time_ns()
            recs = parse_block(block)
            assert block.count == len(recs)
            assert block.mapped.header.linktype == int(LinkType.ETHERNET)
            assert block.mapped.header.tick_s == 1e-9
            for sec, nsec, wirelen, frame in recs:
                assert nsec < 1_000_000_000
                assert t0_ns - 10**9 <= sec * 10**9 + nsec <= t1_ns + 10**9
                assert wirelen == len(frame)
                assert frame[12:14] == b"\x08\x00"
            if recs:
                sec, nsec = recs[-1][0], recs[-1][1]
                assert block.last_ts == sec + nsec * 1e-9
            frames += [r[3] for r in recs]
        if reader == "read_block_pcap":
            assert blocks
            assert sum(b.count for b in blocks) == len(frames)


def test_all_frames_of_a_flow_reach_one_ring_of_a_fanout_group(
    receiver: tuple[socket.socket, int],
) -> None:
    if os.geteuid() != 0:
        pytest.skip("an AF_PACKET ring needs root (CAP_NET_RAW)")
    group = fanout_group_id() ^ 0x5A5A  # not the group of a daemon running here
    s = settings_for(receiver[1], fanout_group=group)
    rings = [Ring("lo", s), Ring("lo", s)]
    try:
        wanted = payloads(b"fanout", 6)
        send(receiver[1], wanted)
        frames: list[list[bytes]] = [[], []]
        deadline = time.monotonic() + DEADLINE_S
        while not all_seen(frames[0] + frames[1], wanted):
            left = deadline - time.monotonic()
            assert left > 0, f"payloads not seen within {DEADLINE_S} s"
            for r in wait_readable(rings, left):
                while (got := r.read_block()) is not None:
                    frames[rings.index(r)] += [rec[3] for rec in got]
        assert sorted(len(f) > 0 for f in frames) == [False, True]  # one flow, one ring
    finally:
        for r in rings:
            r.close()


def test_wait_readable_times_out_on_a_quiet_ring(ring: Ring) -> None:
    t0 = time.monotonic()
    assert wait_readable([ring], 0.05) == []
    assert 0.03 <= time.monotonic() - t0 < 1.0
    assert not ring.ready()
    assert ring.read_block() is None
    assert ring.read_block_pcap() is None


@needs_root
def test_a_ring_on_a_missing_interface() -> None:
    with pytest.raises(RingError, match="no such interface") as info:
        Ring("nw-none0", RingSettings(ring_mb=1, block_kb=64))
    assert "nw-none0" in str(info.value)


@needs_root
def test_a_ring_with_a_block_size_that_is_not_a_power_of_two() -> None:
    try:
        r = Ring("lo", RingSettings(ring_mb=2, block_kb=1000))
    except RingError as exc:
        assert exc.errno == errno.EINVAL
        raise
    r.close()


@needs_root
def test_interface_drops_reads_sys_at_most_every_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[str] = []
    counter = iter(range(100, 10_000, 7))

    def fake_drops(interface: str) -> int:
        reads.append(interface)
        return next(counter)

    monkeypatch.setattr(afpacket, "_interface_drops", fake_drops)
    now = [1000.0]
    r = Ring("lo", RingSettings(ring_mb=1, block_kb=64), clock=lambda: now[0])
    try:
        assert reads == ["lo"]  # the base, at open
        assert [r.interface_drops() for _ in range(50)] == [0] * 50
        assert len(reads) == 1
        now[0] += afpacket.IFACE_READ_EVERY_S
        assert r.interface_drops() == 7
        assert r.interface_drops() == 7
        assert len(reads) == 2
        assert r.interface_drops(fresh=True) == 14  # closing a port reads them now
        assert len(reads) == 3
    finally:
        r.close()
