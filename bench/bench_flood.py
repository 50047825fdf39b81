"""Per-flow cost benchmark: a flood of one-packet flows through the whole netwatch pipeline.

Usage: ``python bench/bench_flood.py [--flows 200000] [--runs 3] [--profile] [--top 30]``

1. generates (once, cached in ``bench/out/``) a capture of ``--flows`` one-packet flows, each
   its own 5-tuple: mixed TCP SYNs and UDP datagrams over IPv4, a tenth from a few camera
   addresses in the site (Hikvision/Dahua MAC prefixes, so they are recognised as cameras)
   to many outside peers, a tenth from outside peers to those cameras, and the rest from
   outside peers to other site addresses (a scan or flood, no camera end), spread evenly
   over ``flows / 20,000`` seconds so that the flow timers run during the replay;
2. replays it in a fresh process per run with the settings of ``netwatch replay``: default
   config, flow log and alert log on (written to ``flood-{flows,alerts}-TAG.jsonl`` in a
   directory of the run's own under ``bench/out/``, removed at the end; ``--keep DIR`` keeps
   them, and the profile, in DIR),
   detection rules on, built-in GeoIP; prints new flows/s, packets/s (the same thing here:
   one packet per flow) per CPU-second of the replay (``time.process_time`` around what
   ``netwatch replay`` times, start-up excluded) and peak memory, the median over ``--runs``;
3. with ``--ab DIR``, alternates every run between this tree and the source tree DIR (an
   export of the base commit), prints both medians, and says whether the two trees wrote
   the same flow log and alert log, byte for byte;
4. with ``--capture PATH``, replays that capture instead of the flood (the same A/B and
   byte comparison on, say, ``bench/out/site-1000000.pcap``), reporting packets/s too;
5. with ``--profile``, runs once more under cProfile and prints the top ``--top`` functions
   by cumulative and by total (own) time.

This is a benchmark to read, not a timed test. Reads no config file. Known limits: IPv4
only, no payloads (the deep parsers see nothing), every flow ends at its inactivity timeout
or at the end of the input, never by a FIN.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import pstats
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
sys.path.insert(0, str(HERE.parent))

from netwatch.testing import pcapgen as pg  # noqa: E402  (after the path set-up)

EPOCH_US = 1_767_261_600_000_000  # 2026-01-01T10:00:00Z
FLOWS_PER_S = 20_000  # packet-time rate of the flood
CAMERAS = 6
CAMERA_VLAN = 20
CAMERA_OUT_SHARE = 0.1  # camera -> outside peer
CAMERA_IN_SHARE = 0.1  # outside peer -> camera
TCP_SHARE = 0.5
ROUTER_MAC = "02:00:5e:00:00:01"
TCP_PORTS = (22, 23, 80, 443, 554, 8000, 8080, 37777)
UDP_PORTS = (53, 123, 1900, 3702, 5060, 37810)


def _outside(rng: random.Random) -> str:
    """A public-looking IPv4 address (first octet 1-223, not 10/127/172/192)."""
    first = rng.choice([o for o in range(1, 224) if o not in (10, 127, 172, 192)])
    return f"{first}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def _frame(rng: random.Random, i: int, route: pg.Route, dport: int) -> bytes:
    sport = 1024 + (i % 64_000)
    if rng.random() < TCP_SHARE:
        return pg.tcp_frame(
            route,
            sport,
            dport if dport in TCP_PORTS else rng.choice(TCP_PORTS),
            seq=rng.getrandbits(32),
            ack=0,
            flags=pg.TcpFlag.SYN,
            ident=i & 0xFFFF,
        )
    return pg.udp_frame(
        route, sport, dport if dport in UDP_PORTS else rng.choice(UDP_PORTS), b"", ident=i
    )


def flood_frames(flows: int, seed: int = 1) -> Iterator[tuple[int, bytes]]:
    """(timestamp µs, frame) of every one-packet flow, in time order."""
    rng = random.Random(seed)
    cams = [
        (pg.host_mac(pg.HIKVISION_OUIS[k % 6], 0x100 + k), f"10.20.1.{k + 1}")
        for k in range(CAMERAS)
    ]
    step_us = 1_000_000 // FLOWS_PER_S
    for i in range(flows):
        draw = rng.random()
        peer = _outside(rng)
        if draw < CAMERA_OUT_SHARE:
            mac, ip = rng.choice(cams)
            route = pg.Route.of(mac, ip, ROUTER_MAC, peer, (CAMERA_VLAN,))
            dport = rng.choice(TCP_PORTS + UDP_PORTS)
        elif draw < CAMERA_OUT_SHARE + CAMERA_IN_SHARE:
            mac, ip = rng.choice(cams)
            route = pg.Route.of(ROUTER_MAC, peer, mac, ip, (CAMERA_VLAN,))
            dport = rng.choice(TCP_PORTS + UDP_PORTS)
        else:
            host = rng.randrange(1, 65_000)
            route = pg.Route.of(
                ROUTER_MAC,
                peer,
                pg.host_mac("02:4e:57", host),
                f"10.30.{host >> 8}.{host & 0xFF or 1}",
            )
            dport = rng.choice(TCP_PORTS + UDP_PORTS)
        yield i * step_us, _frame(rng, i, route, dport)


def ensure_capture(flows: int) -> Path:
    """The generated flood capture (cached by flow count)."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"flood-{flows}.pcap"
    if not path.exists():
        t = time.perf_counter()
        tmp = path.with_suffix(".tmp")
        with tmp.open("wb") as stream, pg.PcapWriter(stream) as writer:
            writer.write_records(flood_frames(flows), offset_us=EPOCH_US)
        tmp.rename(path)
        print(f"generated {path} in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    return path


CHILD = r"""
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[4])
import time, types
from netwatch.config import Config
import netwatch.replay
from netwatch.replay import run_replay
# the replay times its packet loop with perf_counter: make that CPU time
netwatch.replay.time = types.SimpleNamespace(perf_counter=time.process_time)
profile = sys.argv[3]
args = ([Path(sys.argv[1])], Config.default())
kwargs = dict(flows_out=Path(sys.argv[2]), alerts_out=Path(sys.argv[5]), uid_seed=1, detect=True)
if profile != "-":
    import cProfile, pstats
    prof = cProfile.Profile()
    s = prof.runcall(run_replay, *args, **kwargs)
    prof.dump_stats(profile)
else:
    s = run_replay(*args, **kwargs)
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
kib = lambda key: int(status[key].split()[0]) / 1024
print(json.dumps({"packets": s.packets, "flows": s.flows, "elapsed_s": s.elapsed_s,
                  "alerts": s.alerts, "peak_rss_mib": kib("VmHWM"), "anon_mib": kib("RssAnon")}))
"""


def logs(pcap: Path, tag: str, work: Path) -> tuple[Path, Path]:
    """The flow log and alert log a run of ``pcap`` tagged ``tag`` writes in ``work``."""
    name = pcap.stem.split("-")[0]
    return work / f"{name}-flows-{tag}.jsonl", work / f"{name}-alerts-{tag}.jsonl"


def run_child(
    pcap: Path, profile: Path | None, code_root: Path, tag: str, work: Path
) -> dict[str, float]:
    """One replay in a fresh interpreter; returns its JSON summary (``elapsed_s``: CPU s)."""
    flows_log, alerts_log = logs(pcap, tag, work)
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD,
            str(pcap),
            str(flows_log),
            str(profile) if profile else "-",
            str(code_root),
            str(alerts_log),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def print_profile(path: Path, top: int) -> None:
    """Top functions by cumulative and by own time."""
    for key in ("cumulative", "tottime"):
        print(f"--- top {top} by {key} ---")
        pstats.Stats(str(path)).sort_stats(key).print_stats(top)


def report(tag: str, runs: list[dict[str, float]]) -> None:
    """One tree's median rate (per CPU-second), every round's, and memory."""
    rates = [r["flows"] / r["elapsed_s"] for r in runs]
    pps = statistics.median(r["packets"] / r["elapsed_s"] for r in runs)
    print(
        f"{tag}: new flows per CPU-second: {statistics.median(rates):,.0f} median "
        f"of {len(runs)} ({', '.join(f'{r:,.0f}' for r in rates)}); per flow "
        f"{1e6 / statistics.median(rates):.1f} µs; packets per CPU-second {pps:,.0f}; peak RSS "
        f"{statistics.median(r['peak_rss_mib'] for r in runs):.0f} MiB, anonymous "
        f"{statistics.median(r['anon_mib'] for r in runs):.0f} MiB"
    )


def main() -> int:
    """CLI entry point."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--flows", type=int, default=200_000)
    ap.add_argument("--runs", type=positive, default=3)
    ap.add_argument("--profile", action="store_true", help="also one run under cProfile")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument(
        "--code", type=Path, default=HERE.parent, help="netwatch source tree to run (A/B)"
    )
    ap.add_argument("--ab", type=Path, help="alternate runs with this source tree (A/B)")
    ap.add_argument("--capture", type=Path, help="replay this capture instead of the flood")
    ap.add_argument("--keep", type=Path, help="write the logs (and the profile) here and keep them")
    args = ap.parse_args()
    pcap = args.capture.resolve() if args.capture else ensure_capture(args.flows)
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        return measure(args, pcap, args.keep)
    # a directory of this run's own: two benchmarks at once never compare each other's logs
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=OUT, prefix="run-") as work:
        return measure(args, pcap, Path(work))


def positive(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def measure(args: argparse.Namespace, pcap: Path, work: Path) -> int:
    """The rounds, the report, the byte comparison and the profile; logs go to ``work``."""
    trees = [("branch", args.code)] + ([("base", args.ab)] if args.ab else [])
    runs: dict[str, list[dict[str, float]]] = {tag: [] for tag, _ in trees}
    for _ in range(args.runs):
        for tag, root in trees:
            runs[tag].append(run_child(pcap, None, root, tag, work))
    first = runs["branch"][0]
    print(
        f"{pcap.name}: {int(first['packets']):,} packets, {int(first['flows']):,} flows, "
        f"{int(first['alerts'])} alert notifications"
    )
    for tag, _ in trees:
        report(tag, runs[tag])
    if args.ab:
        same = all(
            filecmp.cmp(a, b, shallow=False)
            for a, b in zip(logs(pcap, "branch", work), logs(pcap, "base", work), strict=True)
        )
        print(f"flow log and alert log byte-identical between branch and base: {same}")
    if args.profile:
        prof = work / "flood.prof"
        run_child(pcap, prof, args.code, "profile", work)
        print_profile(prof, args.top)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
