"""CPU cost of laying TPACKET_V3 ring blocks out as pcap records: C against Python.

Usage: ``python bench/bench_ring.py [--packets 200000] [--block-kb 1024] [--runs 5]``.
The first ``--packets`` frames of the generated camera-site capture (``bench/gen_site_pcap.py``,
cached in ``bench/out/``) are packed into synthetic blocks laid out as the kernel lays them
(block descriptor, one ``tpacket3_hdr`` per frame at 16-byte alignment, the frame at
``tp_mac`` = 66; a frame's outer VLAN tag stripped into the header, as the kernel does on
receive, so the conversion puts it back), then every block is
converted with ``netwatch._ring.block_records`` (C) and with
``netwatch.capture.afpacket.block_records_py`` (the Python fallback), runs alternated,
``time.process_time`` of the conversions only, median of ``--runs``; nanoseconds per packet
and packets per CPU-second. No root needed: this is the ring reader's own work, without the
kernel or the pipeline (``bench/bench_live.py`` measures those).

A benchmark to read, not a timed test. Needs the extension (``pip install -e .``).
"""

from __future__ import annotations

import argparse
import statistics
import struct
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_pipeline import ensure_capture  # noqa: E402

from netwatch.capture.afpacket import (  # noqa: E402
    TP_STATUS_USER,
    TP_STATUS_VLAN_TPID_VALID,
    TP_STATUS_VLAN_VALID,
    block_records_py,
)
from netwatch.capture.files import open_capture  # noqa: E402

BLOCK_HEADER = 48
MAC = 66
ALIGN = 16
VLAN_TPIDS = (0x8100, 0x88A8)
Convert = Callable[[bytes, int, int], tuple[bytes, int, float]]


def frames(path: Path, limit: int) -> list[tuple[int, int, bytes]]:
    """(stamp ns, wire length, captured bytes) of the first ``limit`` records."""
    out = []
    with open_capture(path) as cap:
        for ts, _link, wirelen, frame in cap.packets():
            out.append((int(ts * 1e9), wirelen, bytes(frame)))
            if len(out) == limit:
                break
    return out


def blocks(fr: list[tuple[int, int, bytes]], block_size: int) -> Iterator[bytes]:
    """The frames packed into kernel-like blocks of ``block_size`` bytes."""
    buf = bytearray(block_size)
    off, num = BLOCK_HEADER, 0
    for ns, wirelen, data in fr:
        size = -(-(MAC + len(data)) // ALIGN) * ALIGN
        if off + size > block_size and num:
            struct.pack_into("=IIIII", buf, 0, 3, 0, TP_STATUS_USER, num, BLOCK_HEADER)
            yield bytes(buf)
            buf, off, num = bytearray(block_size), BLOCK_HEADER, 0
        status, tci, tpid, body = TP_STATUS_USER, 0, 0, data
        if int.from_bytes(data[12:14]) in VLAN_TPIDS and len(data) >= 16:
            status |= TP_STATUS_VLAN_VALID | TP_STATUS_VLAN_TPID_VALID
            tpid, tci = struct.unpack_from("!HH", data, 12)
            body, wirelen = data[:12] + data[16:], wirelen - 4
        sec, nsec = divmod(ns, 10**9)
        hdr = (size, sec, nsec, len(body), wirelen, status, MAC, MAC + 14, 0, tci, tpid)
        struct.pack_into("=IIIIIIHHIIH", buf, off, *hdr)
        buf[off + MAC : off + MAC + len(body)] = body
        off, num = off + size, num + 1
    if num:
        struct.pack_into("=IIIII", buf, 0, 3, 0, TP_STATUS_USER, num, BLOCK_HEADER)
        yield bytes(buf)


def _frames(data: bytes) -> Iterator[bytes]:
    off = 0
    while off < len(data):
        caplen = struct.unpack_from("<I", data, off + 8)[0]
        yield data[off + 16 : off + 16 + caplen]
        off += 16 + caplen


def timed(convert: Convert, blks: list[bytes]) -> tuple[float, int]:
    """CPU seconds to convert every block, and the packets converted."""
    n = 0
    t0 = time.process_time()
    for b in blks:
        n += convert(b, 0, len(b))[1]
    return time.process_time() - t0, n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--packets", type=int, default=200_000)
    ap.add_argument("--block-kb", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    try:
        from netwatch._ring import block_records  # noqa: PLC0415
    except ImportError:
        print("netwatch._ring is not built (pip install -e .)", file=sys.stderr)
        return 2
    path = ensure_capture(200_000)
    source = frames(path, args.packets)
    blks = list(blocks(source, args.block_kb * 1024))
    for b in blks:  # the same bytes both ways, and the frames as they were in the file
        assert block_records(b, 0, len(b)) == block_records_py(b, 0, len(b))
    ring_frames = [f for b in blks for f in _frames(block_records(b, 0, len(b))[0])]
    assert ring_frames == [f for _ns, _w, f in source], "the conversion changed a frame"
    times: dict[str, list[float]] = {"c": [], "python": []}
    n = 0
    for _ in range(args.runs):
        for name, fn in (("c", block_records), ("python", block_records_py)):
            cpu, n = timed(fn, blks)
            times[name].append(cpu)
    print(f"{n:,} packets in {len(blks)} blocks of {args.block_kb} KiB, {args.runs} runs")
    for name, runs in times.items():
        med = statistics.median(runs)
        print(f"{name:>7}: {med / n * 1e9:8.1f} ns/packet, {n / med:>12,.0f} packets/CPU-s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
