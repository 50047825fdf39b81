"""Packet rate of the tshark slow path (netwatch/capture/tshark.py), from a capture file.

Usage: ``python bench/bench_tshark.py [--pcap pcaps/demo/camera-site-demo.pcap] [--runs 3]``

Replays the file through tshark the way :class:`~netwatch.capture.tshark.TsharkSource` reads
a live capture (``pyshark.FileCapture`` with ``use_json=True, include_raw=True``: tshark
dissects every packet to JSON, pyshark parses it) and turns every packet into a netwatch
``(ts, linktype, wirelen, frame)`` tuple with the same extraction code. It prints packets/s
for the extraction alone (tshark start-up included) and with the netwatch pipeline fed the
batches, plus pyshark's own ``get_raw_packet()`` for comparison. Medians over ``--runs``;
a benchmark to read, not a timed test.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

import pyshark

from netwatch.capture.pcap import Record
from netwatch.capture.tshark import TsharkSource
from netwatch.config import Config
from netwatch.pipeline import Pipeline

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PCAP = ROOT / "pcaps" / "demo" / "camera-site-demo.pcap"
BATCH = 1024


def _extract(pcap: Path, raw_via_pyshark: bool = False) -> list[Record]:
    """All packets of ``pcap`` as netwatch records, through tshark JSON and pyshark."""
    sink = TsharkSource(["file"])  # only its per-packet extraction is used
    records: list[Record] = []
    put = records.append
    loop = asyncio.new_event_loop()
    cap = pyshark.FileCapture(str(pcap), use_json=True, include_raw=True, eventloop=loop)
    try:
        for pkt in cap:
            if raw_via_pyshark:
                frame: bytes = pkt.get_raw_packet()
                assert frame == bytes.fromhex(pkt.frame_raw.value)
            sink._on_packet(pkt)
            put(sink._queue.get_nowait())
    finally:
        cap.close()
        loop.close()
    return records


def _timed(fn: Any, *args: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - t0, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pcap", type=Path, default=DEFAULT_PCAP)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    extract_s: list[float] = []
    pyshark_raw_s: list[float] = []
    pipeline_s: list[float] = []
    total_s: list[float] = []
    records: list[Record] = []
    for _ in range(args.runs):
        seconds, records = _timed(_extract, args.pcap)
        extract_s.append(seconds)
        seconds_raw, _ = _timed(_extract, args.pcap, True)
        pyshark_raw_s.append(seconds_raw)
        pipe = Pipeline(Config.default(), lambda rec: None)
        t0 = time.perf_counter()
        for i in range(0, len(records), BATCH):
            pipe.run(records[i : i + BATCH])
        pipe.finish()
        pipeline_s.append(time.perf_counter() - t0)
        total_s.append(seconds + pipeline_s[-1])

    n = len(records)
    print(f"file: {args.pcap} ({n} packets), runs: {args.runs} (medians)")
    for label, values in (
        ("tshark JSON + pyshark extraction", extract_s),
        ("  same, plus get_raw_packet() per frame", pyshark_raw_s),
        ("netwatch pipeline alone", pipeline_s),
        ("tshark extraction + pipeline", total_s),
    ):
        med = statistics.median(values)
        print(f"{label:38s} {n / med:12,.0f} packets/s  ({med:.2f} s)")


if __name__ == "__main__":
    main()
