"""GeoIP lookup cost benchmark: µs per lookup of a new public address (country and ASN).

Usage: ``python bench/bench_geo.py [--lookups 200000] [--runs 3] [--ab DIR]``

Each run is a fresh interpreter that opens the built-in data (DB-IP Lite country and ASN,
as ``netwatch replay`` does with the default config), puts ``CachedGeo`` in front of it (the
pipeline's per-address cache, large enough never to evict here) and looks up ``--lookups``
distinct public IPv4 addresses (drawn as ``bench_flood.py`` draws its outside peers), then
as many more (a second batch: the per-record answers the compiled walk keeps are warm by
then). It prints the CPU time per lookup (``time.process_time``) of each batch, the median
over ``--runs``; with ``--ab DIR`` runs alternate between this tree and the source tree DIR
(an export of the base commit, with its extensions built) and both medians are printed,
with whether both trees gave the same answers (a digest of every answer).

This is a benchmark to read, not a timed test. Reads no config file. Known limits: IPv4
only; the addresses are spread over the whole public space, so about one in seventeen
reaches an AS record not seen before (a real site talks to far fewer networks).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

CHILD = r"""
import hashlib, json, random, socket, sys, time
sys.path.insert(0, sys.argv[1])
from netwatch.enrich.addrclass import AddressClassifier
from netwatch.enrich.geo import BuiltinGeo, CachedGeo
count = int(sys.argv[2])
rng = random.Random(1)
firsts = [o for o in range(1, 224) if o not in (10, 127, 172, 192)]
def batch():
    return [bytes((rng.choice(firsts), rng.randrange(256), rng.randrange(256),
                   rng.randrange(1, 255))) for _ in range(count)]
backend = BuiltinGeo()
backend.load()
geo = CachedGeo(backend, AddressClassifier([]), max_entries=4 * count)
digest = hashlib.sha256()
out = {}
for name in ("cold", "warm"):
    addrs = batch()
    lookup = geo.lookup
    start = time.process_time()
    answers = [lookup(a) for a in addrs]
    out[name + "_us"] = (time.process_time() - start) / count * 1e6
    for info in answers:
        digest.update(repr((info.cc, info.asn, info.org)).encode())
out["digest"] = digest.hexdigest()
out["misses"] = geo.misses
print(json.dumps(out))
"""


def run_child(code_root: Path, lookups: int) -> dict[str, float | str]:
    """One run in a fresh interpreter; its JSON summary."""
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(code_root), str(lookups)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float | str] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    """CLI entry point."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--lookups", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument(
        "--code", type=Path, default=HERE.parent, help="netwatch source tree to run (A/B)"
    )
    ap.add_argument("--ab", type=Path, help="alternate runs with this source tree (A/B)")
    args = ap.parse_args()
    trees = [("branch", args.code)] + ([("base", args.ab)] if args.ab else [])
    runs: dict[str, list[dict[str, float | str]]] = {tag: [] for tag, _ in trees}
    for _ in range(args.runs):
        for tag, root in trees:
            runs[tag].append(run_child(root, args.lookups))
    for tag, _ in trees:
        parts = []
        for batch in ("cold", "warm"):
            values = [float(r[f"{batch}_us"]) for r in runs[tag]]
            each = ", ".join(f"{v:.2f}" for v in values)
            parts.append(f"{batch} {statistics.median(values):.2f} µs ({each})")
        print(f"{tag}: µs per new public address, median of {args.runs}: {'; '.join(parts)}")
    if args.ab:
        digests = {str(r["digest"]) for rs in runs.values() for r in rs}
        print(f"same answers in every run of both trees: {len(digests) == 1}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
