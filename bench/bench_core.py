"""Records per CPU-second of the compiled core's walk and decode, beside the Python paths.

Usage: ``python bench/bench_core.py [--packets 1000000] [--runs 3] [--batch 65536]``. Over
the generated camera-site capture (``bench/gen_site_pcap.py``, cached in ``bench/out/``), each
variant runs in a fresh interpreter, interleaved, ``--runs`` times; CPU time of the loop
only (``time.process_time``, start-up excluded), median reported:

- ``c``: ``netwatch._core.walk_pcap`` over the mapped file in batches (record walk and
  common-shape decode into 88-byte records, GIL released), records not read back; the
  second pass over the mapping is timed (the first, which also faults the mapped pages
  in, is reported beside it as ``first_pass_rps``);
- ``c+read``: the same, and Python unpacks every record (``struct.iter_unpack``): the
  least a consumer pays per packet;
- ``python decode``: the Python equivalent of the same work, ``walk_pcap`` and
  ``Decoder.decode`` per record;
- ``python fused loop``: ``netwatch.fastloop.run_mapped`` (record walk, decode and the flow
  table's counters; new flows, deep parsers and the general path included; flow-end work
  and start-up not included) with the default config, rules off;
- ``C fast loop``: the same with ``netwatch.corefeed.run_core`` (the default when the core
  is built): C walks, decodes, finds the flow in Python's table and updates it in place;
  Python takes the packets C hands back (new flows, deep-parser payloads, odd frames,
  timers); the counts of hand-backs by reason (and of COND by sub-reason,
  ``netwatch.core.CondReason``) are printed beside it, with the first bare ACKs and first
  FINs C applied itself.

``--replay`` adds the whole pipeline (``netwatch replay``'s ``run_replay``: flow log on, all
rules on, the built-in GeoIP), default settings, once with ``NETWATCH_CORE=python`` and once
with the C fast loop, also interleaved: packets per CPU-second of the whole process (start-up
included) and of the replay alone (from just before ``run_replay``).

A benchmark to read, not a timed test. Needs the compiled core (``pip install -e .``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_pipeline import ensure_capture  # noqa: E402

OPEN = r"""
import json, mmap, sys, time
fh = open(sys.argv[1], "rb")
buf = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
"""

C_WALK = (
    OPEN
    + r"""
from netwatch import core
from netwatch.core import RECORD, Kind
batch_size, read = int(sys.argv[2]), sys.argv[3] == "read"
def one_pass():
    n = common = 0
    t = time.process_time()
    off, end = 24, len(buf)
    while True:
        b = core.walk_pcap(buf, off, end, little=True, ethernet=True, limit=batch_size)
        n += len(b.records) // RECORD.size
        if read:
            for r in RECORD.iter_unpack(b.records):
                if r[14]:
                    common += 1
        off = b.next
        if b.status is not core.Status.FULL:
            return n, common, time.process_time() - t
n, common, cold = one_pass()  # the first pass also faults the mapped pages in
n, common, el = one_pass()
print(json.dumps({"records": n, "cpu_s": el, "rps": n / el, "common": common,
                  "first_pass_rps": round(n / cold)}))
"""
)

PY_DECODE = (
    OPEN
    + r"""
from netwatch.capture.pcap import PcapHeader, ReadStats, walk_pcap
from netwatch.decode.frames import Decoder
header = PcapHeader.parse(buf[:24])
decode = Decoder().decode
n = 0
t = time.process_time()
for ts, link, wirelen, frame in walk_pcap(buf, 24, len(buf), True, header=header,
                                          stats=ReadStats()):
    decode(link, frame, wirelen, ts)
    n += 1
el = time.process_time() - t
print(json.dumps({"records": n, "cpu_s": el, "rps": n / el}))
"""
)

PY_FUSED = (
    OPEN
    + r"""
from pathlib import Path
from netwatch.capture.files import open_capture
from netwatch.config import Config
from netwatch.core import CondReason, FastStatus
from netwatch.corefeed import fast_loop, run_core
from netwatch.fastloop import run_mapped
from netwatch.pipeline import Pipeline
c = sys.argv[2] == "c"
loop = run_core if c else run_mapped
pipe = Pipeline(Config.default(), lambda rec: None)
capture = open_capture(Path(sys.argv[1]))
m = capture.mapped_pcap()
t = time.process_time()
fused, _ = loop(pipe, m)
el = time.process_time() - t
n = m.stats.records
extra = {}
if c:
    extra = {"in_c": fast_loop().fast, "key_hits": fast_loop().key_hits,
             "handed": {s.name: k for s, k in zip(FastStatus, fast_loop().reasons())
                        if k and s >= FastStatus.ODD},
             "cond": {s.name: k for s, k in zip(CondReason, fast_loop().conds()) if k},
             "first_acks": fast_loop().first_acks, "first_fins": fast_loop().first_fins}
print(json.dumps({"records": n, "cpu_s": el, "rps": n / el, "fused": fused, **extra}))
"""
)

REPLAY = r"""
import resource, sys, json
def cpu():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime
from pathlib import Path
from netwatch.config import Config
from netwatch.replay import run_replay
t = cpu()
s = run_replay([Path(sys.argv[1])], Config.default(), flows_out=Path(sys.argv[2]), uid_seed=1,
               detect=True)
total = cpu()
print(json.dumps({"packets": s.packets, "flows": s.flows, "rps": s.packets / total,
                  "replay_rps": s.packets / (total - t), "cpu_s": total}))
"""


def _child(code: str, *args: str, core: str = "") -> dict[str, float]:
    env = dict(os.environ)
    if core:
        env["NETWATCH_CORE"] = core
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True, env=env
    )
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=65536)
    ap.add_argument("--replay", action="store_true", help="also the whole pipeline, both loops")
    ap.add_argument("--only-replay", action="store_true", help="the whole pipeline only")
    args = ap.parse_args()
    pcap = str(ensure_capture(args.packets))
    variants: dict[str, tuple[str, ...]] = {}
    if not args.only_replay:
        variants = {
            "c": (C_WALK, pcap, str(args.batch), "no"),
            "c+read": (C_WALK, pcap, str(args.batch), "read"),
            "python decode": (PY_DECODE, pcap),
            "python fused loop": (PY_FUSED, pcap, "python"),
            "C fast loop": (PY_FUSED, pcap, "c"),
        }
    flows = str(Path(tempfile.gettempdir()) / "bench_core_flows.jsonl")
    if args.replay or args.only_replay:
        variants["replay, python loop"] = (REPLAY, pcap, flows, "python")
        variants["replay, C fast loop"] = (REPLAY, pcap, flows, "c")
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    for _ in range(args.runs):  # interleaved, so all see the same machine conditions
        for name, (code, *rest) in variants.items():
            if code is REPLAY:
                runs[name].append(_child(code, *rest[:2], core=rest[2]))
            else:
                runs[name].append(_child(code, *rest))
    print(
        f"machine: {platform.node()} {platform.machine()}, {platform.processor() or '?'}, "
        f"{platform.python_implementation()} {platform.python_version()}; {Path(pcap).name}"
    )
    for name, results in runs.items():
        rps = statistics.median(r["rps"] for r in results)
        each = ", ".join(f"{r['rps']:,.0f}" for r in results)
        extra = {k: v for k, v in results[0].items() if k not in ("rps", "cpu_s")}
        if "replay_rps" in extra:  # the whole pipeline: the replay alone, start-up excluded
            extra["replay_rps"] = round(statistics.median(r["replay_rps"] for r in results))
        print(f"{name:20} {rps:>12,.0f} records/CPU-s  ({each})  {extra}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
