"""Micro-benchmark of the deep parsers on recorded payloads: µs per payload, per parser.

Usage::

    python bench/bench_deep.py record OUT.pkl [CAPTURE ...]   # default: the site capture
    python bench/bench_deep.py run OUT.pkl [--ab DIR] [--runs 5] [--repeat 3]

``record`` replays the captures through the whole pipeline (``netwatch replay``'s
``run_replay``, default config, rules on) and keeps, as plain bytes, ints and strings (so that
another source tree can read them): every call the flow table makes to the deep-parser
inspector (the flow's addresses, ports, protocol and TCP history at the time, the direction,
the payload, the timestamp), every UDP payload to or from a DNS, mDNS or LLMNR port (what the
DNS parser reads), every payload given to the ClientHello parser (``parse_client_hello``)
and to the payload-signature lookup (``match_payload``).

``run`` times, in a fresh interpreter per round (alternating with the source tree ``--ab``
when given; medians of ``--runs`` rounds, each the best of ``--repeat`` passes):

- ``inspector``: every recorded inspector call through a fresh ``Inspector`` (real passive
  DNS cache, banner and payload-signature lookups from the seeds), on fresh flows carrying
  the recorded addresses, ports and history: µs per payload;
- ``inspector_dns``: the same, only the calls with a UDP payload to or from a DNS, mDNS or
  LLMNR port (the DNS parser's whole path, the passive DNS cache included): µs per payload;
- ``dns``: ``parse_dns`` over the recorded DNS messages: µs per message and per answer;
- ``tls``: ``parse_client_hello`` over the recorded client bytes: µs per call;
- ``signatures``: ``SignatureMatcher.match_payload`` over the recorded lookups: µs per
  payload.

A benchmark to read, not a timed test. Reads no config file.
"""

from __future__ import annotations

import argparse
import json
import pickle
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SITE = HERE / "out" / "site-1000000.pcap"
sys.path.insert(0, str(HERE.parent))

from netwatch.config import Config  # noqa: E402  (after the path set-up)
from netwatch.deep import tls  # noqa: E402
from netwatch.deep.dns import DnsParser  # noqa: E402
from netwatch.flow.inspect import Inspector  # noqa: E402
from netwatch.flow.table import PROTO_UDP, Flow  # noqa: E402
from netwatch.replay import run_replay  # noqa: E402
from netwatch.signatures.match import SignatureMatcher  # noqa: E402

DNS_PORTS = DnsParser.udp_ports


def record(out: Path, captures: list[Path]) -> None:
    """Replay ``captures`` and pickle the deep parsers' inputs into ``out``."""
    calls: list[tuple[Any, ...]] = []
    flows: dict[int, int] = {}
    keep: list[Flow] = []  # flows stay alive, so their ids are not reused
    dns_in: list[bytes] = []
    tls_in: list[bytes] = []
    sig_in: list[tuple[str, int, bytes, str]] = []
    payload, parse_hello = Inspector.payload, tls.parse_client_hello
    match = SignatureMatcher.match_payload

    def on_payload(
        self: Inspector, flow: Flow, is_orig: bool, frame: bytes, off: int, plen: int, ts: float
    ) -> None:
        ident = flows.setdefault(id(flow), len(flows))
        if ident == len(keep):
            keep.append(flow)
        hist = None if flow.hist is None else tuple(flow.hist)
        addresses = (flow.orig_h, flow.resp_h, flow.orig_p, flow.resp_p)
        data = frame[off : off + plen]
        calls.append((ident, flow.proto, *addresses, hist, is_orig, data, ts))
        if flow.proto == PROTO_UDP and data and DNS_PORTS & {flow.orig_p, flow.resp_p}:
            dns_in.append(data)
        payload(self, flow, is_orig, frame, off, plen, ts)

    def on_hello(data: bytes) -> tls.ParseResult:
        tls_in.append(bytes(data))
        return parse_hello(data)

    def on_match(self: SignatureMatcher, proto: str, port: int, data: bytes, way: str) -> Any:
        sig_in.append((proto, port, bytes(data), way))
        return match(self, proto, port, data, way)

    Inspector.payload = on_payload  # type: ignore[method-assign]
    tls.parse_client_hello = on_hello
    SignatureMatcher.match_payload = on_match  # type: ignore[method-assign, assignment]
    for capture in captures:
        run_replay([capture], Config.default(), uid_seed=1, detect=True)
    data: dict[str, list[Any]] = {"calls": calls, "dns": dns_in, "tls": tls_in}
    data["signatures"] = sig_in
    out.write_bytes(pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL))
    print(json.dumps({k: len(v) for k, v in data.items()}))


CHILD = r"""
import json, pickle, sys, time
sys.path.insert(0, sys.argv[2])
from netwatch.config import Config
from netwatch.deep.dns import parse_dns
from netwatch.deep.tls import parse_client_hello
from netwatch.enrich.names import PassiveDns
from netwatch.flow.inspect import Inspector
from netwatch.flow.table import Flow
from netwatch.pipeline import banner_vendor_of
from netwatch.signatures.match import SignatureMatcher

data = pickle.loads(open(sys.argv[1], "rb").read())
repeat = int(sys.argv[3])
cfg = Config.default()
matcher = SignatureMatcher.load()
clock = time.process_time

def best(fn):
    times = []
    for _ in range(repeat):
        t = clock()
        fn()
        times.append(clock() - t)
    return min(times)

def inspector(calls):
    names = PassiveDns(cfg.dns.cache_size, cfg.dns.min_ttl_s, cfg.dns.max_ttl_s)
    insp = Inspector(names, cfg.deep.max_hello_bytes)
    insp.on_camera = lambda host, vendor, how, ident: None
    insp.banners = banner_vendor_of(matcher)
    insp.payloads = matcher.match_payload
    flows = {}
    for ident, proto, oh, rh, op, rp, hist, is_orig, payload, ts in calls:
        flow = flows.get(ident)
        if flow is None:
            flow = flows[ident] = Flow((ident,), "C", ts, proto)
            flow.orig_h, flow.resp_h, flow.orig_p, flow.resp_p = oh, rh, op, rp
        flow.hist = None if hist is None else list(hist)
        insp.payload(flow, is_orig, payload, 0, len(payload), ts)

def dns():
    for payload in data["dns"]:
        parse_dns(payload)

def tls():
    for payload in data["tls"]:
        parse_client_hello(payload)

def signatures():
    match = matcher.match_payload
    for proto, port, payload, way in data["signatures"]:
        match(proto, port, payload, way)

DNS_PORTS = {53, 5353, 5355}
dns_calls = [c for c in data["calls"] if c[1] == 17 and c[8] and DNS_PORTS & {c[4], c[5]}]
answers = sum(len(m.answers) for m in map(parse_dns, data["dns"]) if m is not None)
out = {}
for name, fn, count in (
    ("inspector", lambda: inspector(data["calls"]), len(data["calls"])),
    ("inspector_dns", lambda: inspector(dns_calls), len(dns_calls)),
    ("dns", dns, len(data["dns"])),
    ("tls", tls, len(data["tls"])),
    ("signatures", signatures, len(data["signatures"])),
):
    if count:
        out[name] = best(fn) * 1e6 / count
out["dns_per_answer"] = out.get("dns", 0.0) * len(data["dns"]) / max(answers, 1)
print(json.dumps(out))
"""


def run(calls: Path, trees: list[tuple[str, Path]], runs: int, repeat: int) -> None:
    """Alternate fresh-interpreter rounds over ``trees``; print medians (µs per item)."""
    results: dict[str, list[dict[str, float]]] = {tag: [] for tag, _ in trees}
    for _ in range(runs):
        for tag, root in trees:
            proc = subprocess.run(
                [sys.executable, "-c", CHILD, str(calls), str(root), str(repeat)],
                check=False,
                capture_output=True,
                text=True,
                cwd=root,
            )
            if proc.returncode:
                raise SystemExit(f"{tag} round failed:\n{proc.stderr}")
            results[tag].append(json.loads(proc.stdout.splitlines()[-1]))
    data = pickle.loads(calls.read_bytes())
    print(
        f"{calls.name}: {len(data['calls'])} inspector calls, {len(data['dns'])} DNS messages, "
        f"{len(data['tls'])} ClientHello parses, {len(data['signatures'])} signature lookups"
    )
    base = results[trees[-1][0]]
    for name in results[trees[0][0]][0]:
        line = []
        for tag, _ in trees:
            values = [r[name] for r in results[tag]]
            line.append(
                f"{tag} {statistics.median(values):.2f} ({', '.join(f'{v:.2f}' for v in values)})"
            )
        ratio = ""
        if len(trees) > 1:
            mine = statistics.median(r[name] for r in results[trees[0][0]])
            theirs = statistics.median(r[name] for r in base)
            ratio = f"; base/branch {theirs / mine:.2f}x" if mine else ""
        print(f"{name} µs: " + "; ".join(line) + ratio)


def main() -> int:
    """CLI entry point."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    rec = sub.add_parser("record")
    rec.add_argument("out", type=Path)
    rec.add_argument("captures", type=Path, nargs="*")
    timed = sub.add_parser("run")
    timed.add_argument("calls", type=Path)
    timed.add_argument("--ab", type=Path, help="alternate rounds with this source tree")
    timed.add_argument("--runs", type=int, default=5)
    timed.add_argument("--repeat", type=int, default=3)
    timed.add_argument("--code", type=Path, default=HERE.parent)
    args = ap.parse_args()
    if args.cmd == "record":
        record(args.out, [c.resolve() for c in args.captures] or [SITE])
    else:
        trees = [("branch", args.code.resolve())]
        if args.ab:
            trees.append(("base", args.ab.resolve()))
        run(args.calls.resolve(), trees, args.runs, args.repeat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
