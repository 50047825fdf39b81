"""Live capture on Linux: an ``AF_PACKET`` socket with a ``TPACKET_V3`` memory-mapped ring.

One :class:`Ring` per interface (and per worker): the kernel fills fixed-size blocks of
the ring with frames and hands a block over when it is full or after ``retire_ms``; netwatch
walks the block's frames straight from the mapping and gives the block back. Nothing is
copied by the kernel into user space per packet, and there is one ``poll`` per block, not
per packet. Built on the standard library only (``socket``, ``mmap``, ``struct``):
libpcap's own TPACKET_V3 loop does the same work, but every Python binding of it
(pcapy-ng, python-libpcap) calls back into Python once per packet, which costs more than
this walk; see the README for the measured figures.

Set-up order matters (packet(7)): the socket is created with protocol 0 so that it
receives nothing until the BPF filter (compiled by libpcap, :mod:`netwatch.capture.bpf`)
and the ring are in place; only then is it bound to the interface with ``ETH_P_ALL``,
put in promiscuous mode (``PACKET_ADD_MEMBERSHIP``, undone by the kernel when the socket
closes) and, with several workers, joined to a ``PACKET_FANOUT`` group by flow hash
(symmetric, with defragmentation), so both directions of a flow reach the same worker.

A VLAN tag the driver stripped (``TP_STATUS_VLAN_VALID``) is put back into the frame, as
libpcap does, so flows and counters equal those of a capture file. The daemon's path
(:meth:`Ring.read_block_pcap`) lays a whole block out as classic pcap records in one call
to :data:`block_records`: ``netwatch._ring`` (C, ``netwatch/_ring.c``: bounds-checked against
the block, GIL released while it copies) when built, else :func:`block_records_py`, the
reference it is tested against byte for byte. Kernel drops come from
``PACKET_STATISTICS`` (read-and-reset, accumulated here: ``tp_packets`` counts the dropped
ones too, so delivered = packets - drops); interface drops from the interface's
``rx_dropped`` and ``rx_missed_errors`` counters since the ring was opened.

Config read: ``capture.snaplen``, ``capture.ring_mb``, ``capture.block_kb``,
``capture.promisc``, ``capture.bpf`` (through :class:`RingSettings`); the environment
variable ``NETWATCH_PURE=1`` (the Python conversion even when the C one is built). Needs
CAP_NET_RAW (and CAP_NET_ADMIN for promiscuous mode on some kernels). Known limits: frames
larger than a block are truncated by the kernel; packets the host itself sends on the
interface are captured too (a mirror port has none).
"""

from __future__ import annotations

import contextlib
import mmap
import os
import select
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from netwatch.capture.bpf import BpfInsn, attach_filter, lock_filter
from netwatch.capture.files import MappedPcap
from netwatch.capture.linktypes import LinkType
from netwatch.capture.pcap import Buffer, PcapHeader, ReadStats, Record
from netwatch.capture.source import Block
from netwatch.compiled import optional

SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_VERSION = 10
PACKET_FANOUT = 18
PACKET_MR_PROMISC = 1
TPACKET_V3 = 2
PACKET_FANOUT_HASH = 0
PACKET_FANOUT_FLAG_DEFRAG = 0x8000
ETH_P_ALL = 0x0003

TP_STATUS_KERNEL = 0
TP_STATUS_USER = 1
TP_STATUS_VLAN_VALID = 1 << 4
TP_STATUS_VLAN_TPID_VALID = 1 << 6

_REQ3 = struct.Struct("7I")  # struct tpacket_req3
_BLOCK = struct.Struct("=IIIII")  # version, offset_to_priv, block_status, num_pkts, first
_HDR3 = struct.Struct("=IIIIIIHHIIH")  # tpacket3_hdr up to tp_vlan_tpid
_STATS3 = struct.Struct("III")  # tpacket_stats_v3
_MREQ = struct.Struct("iHH8s")  # packet_mreq
_STATUS_OFF = 8
_STATUS_NUM = struct.Struct("=II")  # block_status, num_pkts
_KERNEL = struct.Struct("=I")
_NUM_FIRST = struct.Struct("=II")  # num_pkts, offset_to_first_pkt
_NUM_OFF = 12  # where num_pkts is in the block descriptor
_BLOCK_HEADER = 20  # what is read of the block descriptor
_MACS = 12  # a re-inserted VLAN tag goes after the two MAC addresses
_VLAN = struct.Struct("!HH")
_U32 = 0xFFFF_FFFF
IFACE_READ_EVERY_S = 0.5  # the interface's /sys drop counters are re-read at most this often
_ETHERNET = int(LinkType.ETHERNET)
_PCAP_REC = struct.Struct("<IIII")  # a classic pcap record header, little-endian
_RING_HEADER = PcapHeader("pcap-ns", "<", 1e-9, 262_144, _ETHERNET)


def block_records_py(ring: Buffer, base: int, size: int) -> tuple[bytes, int, float]:
    """The frames of the TPACKET_V3 block at ``ring[base:base + size]`` as little-endian
    classic pcap records, with a VLAN tag the kernel stripped put back after the MAC
    addresses (TPID from the frame when valid, else 0x8100), as libpcap does: (records,
    frame count, last frame's stamp in seconds, 0.0 without frames). The block is not
    given back here.

    Nothing outside the block is read: the walk stops (keeping the frames before) at the
    first frame whose header or data does not fit, or whose ``tp_next_offset`` does not
    move past its header and data (the kernel's frames never overlap), so a corrupt block
    gives at most ``size // 38`` frames. The reference for ``netwatch._ring`` (same bytes,
    tests/test_ring.py); ValueError when the block is not inside ``ring``.
    """
    if base < 0 or size < 0 or base + size > len(ring) or size > _U32:
        raise ValueError("block_records: the block is not inside the ring")
    if size < _BLOCK_HEADER:
        return b"", 0, 0.0
    view = memoryview(ring)[base : base + size]
    num, first = _NUM_FIRST.unpack_from(view, _NUM_OFF)
    out = bytearray()
    hdr, rec, vlan = _HDR3.unpack_from, _PCAP_REC.pack, _VLAN.pack
    off, count, sec, nsec = first, 0, 0, 0
    for _ in range(num):
        if off > size - _HDR3.size:
            break
        nxt, f_sec, f_nsec, snap, wirelen, st, mac, _net, _h, tci, tpid = hdr(view, off)
        start = off + mac
        if start + snap > size:
            break
        if st & TP_STATUS_VLAN_VALID and (tci or st & TP_STATUS_VLAN_TPID_VALID):
            tpid = tpid if st & TP_STATUS_VLAN_TPID_VALID else 0x8100
            head = start + min(snap, _MACS)
            out += rec(f_sec, f_nsec, snap + 4, (wirelen + 4) & _U32)
            out += view[start:head]
            out += vlan(tpid, tci & 0xFFFF)
            out += view[head : start + snap]
        else:
            out += rec(f_sec, f_nsec, snap, wirelen)
            out += view[start : start + snap]
        count, sec, nsec = count + 1, f_sec, f_nsec
        if nxt < max(_HDR3.size, mac + snap):
            break
        off += nxt
    view.release()
    return bytes(out), count, sec + nsec * 1e-9


def _load_block_records() -> Callable[[Buffer, int, int], tuple[bytes, int, float]]:
    """The compiled conversion when built and not refused (``NETWATCH_PURE=1``), else
    :func:`block_records_py`."""
    compiled: Callable[[Buffer, int, int], tuple[bytes, int, float]] | None = optional(
        "_ring", "block_records"
    )
    return block_records_py if compiled is None else compiled


#: The block-to-records conversion in use: ``netwatch._ring.block_records`` or the Python.
block_records = _load_block_records()
#: "c" when the compiled conversion is in use, else "python".
RING_CONVERSION = "python" if block_records is block_records_py else "c"


class RingError(OSError):
    """The ring cannot be set up (no such interface, no permission, bad sizes)."""


@dataclass(frozen=True, slots=True)
class RingSettings:
    """How one ring is built (from ``capture.*``)."""

    snaplen: int = 65_535
    ring_mb: int = 64
    block_kb: int = 1024
    retire_ms: int = 100
    promisc: bool = True
    bpf: tuple[BpfInsn, ...] = ()
    fanout_group: int | None = None  # join this PACKET_FANOUT group (hash by flow)


def _block_geometry(s: RingSettings) -> tuple[int, int, int]:
    """(block size, block count, frame size) honouring the kernel's constraints."""
    frame = 1 << max(11, (s.snaplen + 128 - 1).bit_length())  # room for headers, power of 2
    unit = max(mmap.PAGESIZE, frame)  # a block holds whole pages and whole frames
    block = max(unit, -(-s.block_kb * 1024 // unit) * unit)
    count = max(2, (s.ring_mb << 20) // block)
    return block, count, frame


@dataclass(slots=True)
class RingStats:
    """Accumulated kernel and interface counters of one ring."""

    packets: int = 0  # delivered to netwatch
    kernel_drops: int = 0
    freezes: int = 0
    cut_blocks: int = 0  # blocks whose frame list ended early (corrupt: never seen)


class Ring:
    """A TPACKET_V3 ring on one interface (see the module docstring)."""

    def __init__(
        self,
        interface: str,
        settings: RingSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interface = interface
        self.settings = settings
        self.stats = RingStats()
        self._clock = clock
        self._iface_base = _interface_drops(interface)
        self._iface_now, self._iface_read_at = self._iface_base, clock()
        try:
            self.ifindex = socket.if_nametoindex(interface)
        except OSError as exc:
            raise RingError(exc.errno or 0, f"{interface}: no such interface") from None
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        try:
            self._set_up()
        except OSError as exc:
            self.sock.close()
            raise RingError(exc.errno or 0, f"{interface}: {exc.strerror or exc}") from None
        self._cur = 0

    def _set_up(self) -> None:
        s, sock = self.settings, self.sock
        sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
        if s.bpf:
            attach_filter(sock, s.bpf)
            lock_filter(sock)
        block, count, frame = _block_geometry(s)
        req = _REQ3.pack(block, count, frame, block * count // frame, s.retire_ms, 0, 0)
        sock.setsockopt(SOL_PACKET, PACKET_RX_RING, req)
        self.block_size, self.block_nr = block, count
        self.ring = mmap.mmap(
            sock.fileno(), block * count, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE
        )
        sock.bind((self.interface, ETH_P_ALL))
        if s.promisc:
            mreq = _MREQ.pack(self.ifindex, PACKET_MR_PROMISC, 0, b"")
            sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
        if s.fanout_group is not None:
            mode = PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_DEFRAG
            arg = (s.fanout_group & 0xFFFF) | (mode << 16)  # above INT_MAX: pass it packed
            sock.setsockopt(SOL_PACKET, PACKET_FANOUT, struct.pack("I", arg))

    def fileno(self) -> int:
        return self.sock.fileno()

    def ready(self) -> bool:
        """True when the kernel handed over the next block."""
        off = self._cur * self.block_size + _STATUS_OFF
        return bool(struct.unpack_from("I", self.ring, off)[0] & TP_STATUS_USER)

    def read_block(self) -> list[Record] | None:
        """The frames of the next block (and give it back), or None when none is ready."""
        ring, base = self.ring, self._cur * self.block_size
        _v, _p, status, num, first = _BLOCK.unpack_from(ring, base)
        if not status & TP_STATUS_USER:
            return None
        out: list[Record] = []
        off = base + first
        hdr = _HDR3.unpack_from
        for _ in range(num):
            nxt, sec, nsec, snap, wirelen, st, mac, _net, _h, tci, tpid = hdr(ring, off)
            start = off + mac
            frame = ring[start : start + snap]
            if st & TP_STATUS_VLAN_VALID and (tci or st & TP_STATUS_VLAN_TPID_VALID):
                tpid = tpid if st & TP_STATUS_VLAN_TPID_VALID else 0x8100
                frame = frame[:12] + struct.pack("!HH", tpid, tci) + frame[12:]
                wirelen += 4
            out.append((sec + nsec * 1e-9, _ETHERNET, wirelen, frame))
            off += nxt
        struct.pack_into("I", ring, base + _STATUS_OFF, TP_STATUS_KERNEL)
        self._cur = (self._cur + 1) % self.block_nr
        self.stats.packets += num
        return out

    def read_block_pcap(self) -> Block | None:
        """The next block as classic pcap records (nanosecond stamps) for the fused loop,
        or None when none is ready. Each frame is copied once, straight from the ring
        (by :data:`block_records`: in C when ``netwatch._ring`` is built)."""
        ring, base = self.ring, self._cur * self.block_size
        status, num = _STATUS_NUM.unpack_from(ring, base + _STATUS_OFF)
        if not status & TP_STATUS_USER:
            return None
        data, count, last_ts = block_records(ring, base, self.block_size)
        _KERNEL.pack_into(ring, base + _STATUS_OFF, TP_STATUS_KERNEL)
        self._cur = (self._cur + 1) % self.block_nr
        self.stats.packets += count
        if count != num:
            self.stats.cut_blocks += 1
        mapped = MappedPcap(data, 0, len(data), _RING_HEADER, ReadStats())
        return Block(mapped, count, last_ts)

    def poll_kernel_stats(self) -> RingStats:
        """Fold the kernel's read-and-reset counters into :attr:`stats`."""
        raw = self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, _STATS3.size)
        packets, drops, freezes = _STATS3.unpack(raw)
        del packets  # delivered frames are counted from the ring itself
        self.stats.kernel_drops += drops
        self.stats.freezes += freezes
        return self.stats

    def interface_drops(self, *, fresh: bool = False) -> int:
        """Drops the interface itself counted since this ring was opened. The counters are
        re-read from /sys at most every :data:`IFACE_READ_EVERY_S` (the daemon asks once
        per block: two file reads each time cost 4 % of a busy worker), or now with
        ``fresh``."""
        at = self._clock()
        if fresh or at - self._iface_read_at >= IFACE_READ_EVERY_S:
            self._iface_now, self._iface_read_at = _interface_drops(self.interface), at
        now = self._iface_now
        if now is None or self._iface_base is None:
            return 0
        return max(0, now - self._iface_base)

    def pending_error(self) -> int:
        """The socket's pending error (ENETDOWN after the interface went away), cleared."""
        return self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)

    def close(self) -> None:
        with contextlib.suppress(AttributeError, BufferError):
            self.ring.close()
        self.sock.close()


def _interface_drops(interface: str) -> int | None:
    base = Path("/sys/class/net") / interface / "statistics"
    total = 0
    try:
        for name in ("rx_dropped", "rx_missed_errors"):
            total += int((base / name).read_text())
    except (OSError, ValueError):
        return None
    return total


def interface_present(interface: str) -> bool:
    """True when the interface exists now."""
    try:
        socket.if_nametoindex(interface)
    except OSError:
        return False
    return True


def wait_readable(rings: list[Ring], timeout_s: float) -> list[Ring]:
    """The rings whose socket is readable or in error within ``timeout_s``."""
    if not rings:
        return []
    poller = select.poll()
    by_fd = {}
    for r in rings:
        poller.register(r.fileno(), select.POLLIN | select.POLLERR)
        by_fd[r.fileno()] = r
    try:
        events = poller.poll(int(timeout_s * 1000))
    except InterruptedError:
        return []
    return [by_fd[fd] for fd, _ev in events if fd in by_fd]


def fanout_group_id() -> int:
    """A fanout group id for this daemon (16 bits, from its pid)."""
    return os.getpid() & 0xFFFF
