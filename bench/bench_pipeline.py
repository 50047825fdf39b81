"""Throughput and memory benchmark of the whole netwatch pipeline, with NFStream alongside.

Usage: ``python bench/bench_pipeline.py [--packets 1000000] [--runs 3] [--flows-mem 1000000]``
(or ``./dev bench``). It

1. generates (once, cached in ``bench/out/``) a realistic camera-site capture with
   ``bench/gen_site_pcap.py`` (video RTP to NVRs, RTSP, TLS, DNS, IPv6, VLAN tags);
2. replays it through ``netwatch replay`` (decode, flow table, deep parsers, enrichment,
   flow log on) in a fresh process per run, reporting packets/s on one core and peak RSS;
3. runs NFStream's C flow meter (one meter, no dissection) on the same file in the same
   session, so the ratio is measured side by side;
4. measures memory per active flow with ``--flows-mem`` concurrent flows held in the table.

Numbers are medians over ``--runs``; this is a benchmark to read, not a timed test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"


def _child(code: str, *args: str) -> dict[str, float]:
    """Run ``code`` in a fresh interpreter; it prints one JSON object on its last line."""
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True
    )
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


MEMORY = r"""
def memory():
    # VmHWM counts the memory-mapped capture's page-cache pages; RssAnon is the process's own.
    status = dict(line.split(":", 1) for line in open("/proc/self/status"))
    kib = lambda key: int(status[key].split()[0]) / 1024
    return {"peak_rss_mib": kib("VmHWM"), "anon_mib": kib("RssAnon")}
"""

NETWATCH = (
    MEMORY
    + r"""
import json, sys
from pathlib import Path
from netwatch.config import Config
from netwatch.replay import run_replay
s = run_replay([Path(sys.argv[1])], Config.default(), flows_out=Path(sys.argv[2]), uid_seed=1,
               detect=sys.argv[3] == "rules")
print(json.dumps({"packets": s.packets, "flows": s.flows, "elapsed_s": s.elapsed_s,
                  "pps": s.packets_per_s, **memory()}))
"""
)

FLOOR = r"""
import json, mmap, struct, sys, time
with open(sys.argv[1], "rb") as fh:
    buf = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
rec = struct.Struct("<IIII").unpack_from
off, last, n = 24, len(buf) - 16, 0
t = time.perf_counter()
while off <= last:
    caplen = rec(buf, off)[2]
    off += 16 + caplen
    n += 1
el = time.perf_counter() - t
print(json.dumps({"packets": n, "pps": n / el}))
"""

NFSTREAM = (
    MEMORY
    + r"""
import json, sys, time
from nfstream import NFStreamer
t = time.perf_counter()
flows = 0
packets = 0
for f in NFStreamer(source=sys.argv[1], n_dissections=0, statistical_analysis=False,
                    decode_tunnels=True, n_meters=1, performance_report=0):
    flows += 1
    packets += f.bidirectional_packets
el = time.perf_counter() - t
print(json.dumps({"packets": packets, "flows": flows, "elapsed_s": el, "pps": packets / el,
                  **memory()}))
"""
)

FLOW_MEMORY = r"""
import gc, json, struct, sys
from netwatch.config import Config
from netwatch.pipeline import Pipeline
n = int(sys.argv[1])
pipe = Pipeline(Config.default(), lambda rec: None)
frame = bytearray(bytes.fromhex(
    "bcad28000001001122334455" "0800" "4500002800004000401100000a000001af10c701" "1f90270f00141234")
    + bytes(12))
def rss():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096
gc.collect()
base = rss()
decode, packet = pipe.decoder.decode, pipe.table.packet
for i in range(n):
    struct.pack_into("!I", frame, 26, 0x0A000000 | (i >> 10))  # 10.x.y.z source
    struct.pack_into("!H", frame, 34, 1024 + (i & 1023))          # source port
    fr = bytes(frame)
    packet(1.0, decode(1, fr, len(fr), 1.0))
gc.collect()
grown = rss() - base
print(json.dumps({"flows": len(pipe.table), "bytes_per_flow": grown / len(pipe.table)}))
"""


def ensure_capture(packets: int) -> Path:
    """The generated benchmark capture (cached by packet count)."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"site-{packets}.pcap"
    if not path.exists():
        t = time.perf_counter()
        subprocess.run(
            [sys.executable, str(HERE / "gen_site_pcap.py"), str(path), "--packets", str(packets)],
            check=True,
        )
        print(f"generated {path} in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    return path


def _rates(runs: list[dict[str, float]]) -> str:
    return ", ".join(f"{r['pps']:,.0f}" for r in runs)


def _median(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def _report(
    pcap: Path,
    floor: list[dict[str, float]],
    nw: list[dict[str, float]],
    nf: list[dict[str, float]],
    mem: dict[str, float] | None,
) -> None:
    print(
        f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} CPUs, "
        f"{platform.python_implementation()} {platform.python_version()}; "
        f"capture {pcap.name} ({pcap.stat().st_size / 1e6:.0f} MB)"
    )
    print(
        f"calibration, bare pcap record walk in Python (no decoding): "
        f"{_median(floor, 'pps'):,.0f} records/s ({_rates(floor)})"
    )
    print(
        f"netwatch replay (full pipeline, flow log on, 1 core): "
        f"{_median(nw, 'pps'):,.0f} packets/s, median of {len(nw)} ({_rates(nw)}); "
        f"{int(nw[0]['flows'])} flows; peak RSS {_median(nw, 'peak_rss_mib'):.0f} MiB "
        f"(with the memory-mapped capture), anonymous {_median(nw, 'anon_mib'):.0f} MiB"
    )
    if nf:
        print(
            f"NFStream (C meter, 1 meter, no dissection): {_median(nf, 'pps'):,.0f} packets/s "
            f"({_rates(nf)}); {int(nf[0]['flows'])} flows; peak RSS "
            f"{_median(nf, 'peak_rss_mib'):.0f} MiB"
        )
        print(f"ratio netwatch / NFStream: {_median(nw, 'pps') / _median(nf, 'pps'):.2f}")
    if mem:
        print(
            f"memory per active flow at {int(mem['flows']):,} concurrent flows: "
            f"{mem['bytes_per_flow']:.0f} bytes"
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--flows-mem", type=int, default=1_000_000)
    ap.add_argument("--no-nfstream", action="store_true")
    args = ap.parse_args()
    pcap = ensure_capture(args.packets)
    nw: list[dict[str, float]] = []
    nf: list[dict[str, float]] = []
    floor: list[dict[str, float]] = []
    bare: list[dict[str, float]] = []
    for _ in range(args.runs):  # interleaved, so all see the same machine conditions
        floor.append(_child(FLOOR, str(pcap)))
        nw.append(_child(NETWATCH, str(pcap), str(OUT / "flows.jsonl"), "rules"))
        bare.append(_child(NETWATCH, str(pcap), str(OUT / "flows.jsonl"), "no-rules"))
        if not args.no_nfstream:
            try:
                nf.append(_child(NFSTREAM, str(pcap)))
            except (subprocess.CalledProcessError, json.JSONDecodeError) as exc:
                print(f"nfstream unavailable: {exc}", file=sys.stderr)
                args.no_nfstream = True
    mem = _child(FLOW_MEMORY, str(args.flows_mem)) if args.flows_mem else None
    _report(pcap, floor, nw, nf, mem)
    print(
        f"detection rules on vs off: {_median(nw, 'pps'):,.0f} vs {_median(bare, 'pps'):,.0f} "
        f"packets/s ({_rates(bare)}): {_median(nw, 'pps') / _median(bare, 'pps'):.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
