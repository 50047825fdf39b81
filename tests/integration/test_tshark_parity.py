"""Parity of netwatch's per-flow packet counts with an independent dissector (tshark 4.x).

For every real capture in ``../shared/corpus/pcaps`` and every generated capture (the
committed ``pcaps/**/*.pcap``, a 20,000-packet ``bench/gen_site_pcap.py`` site, and small
fragmented-tunnel and fragmented-ICMP captures built here), the TCP and UDP packet counts
of netwatch's flows, summed per direction-insensitive 5-tuple, must equal tshark's
conversation statistics translated into netwatch's semantics by
:mod:`tests.integration.tshark` (outer tunnel conversations removed, later fragments
credited to their first fragment's conversation; see that module's docstring for why and
how). netwatch must also read exactly as many frames as tshark.

Differences that are genuine, documented semantic differences are listed per file in
:data:`EXPECTED_DIFFS` and asserted exactly (conversation -> (tshark, netwatch) counts).
Differences caused by netwatch bugs go in :data:`NETWATCH_BUGS` (and
:data:`MISSED_FAILURE_BUGS`), which mark them ``xfail(strict=True)``: a test flips to XPASS
(a failure) once its bug is fixed, and then the entry is deleted. Both are empty: the bugs
this module found (fragmented tunnels, fragmented ICMP, IPv6 zero payload length with a
Fragment header) were fixed in commit 8100cc6, and their tests now guard the fixes.

Malformed captures are also replayed through the CLI (``netwatch replay``, one subprocess
for all of them): exit status 0, no traceback, failures counted; and, per file, at least as
many counted decode failures as frames tshark marks malformed or cut short in a header
layer netwatch decodes (``tshark.HEADER_PROTOCOLS``; defects in payload protocols such as
DNS are not netwatch's business, its fast path never parses them). Documented exceptions
are in :data:`DEFECT_NOT_A_FAILURE`, netwatch bugs in :data:`MISSED_FAILURE_BUGS`.

Speed: tshark runs once per file (fields and both conversation taps in one pass); all
tshark and CLI runs of the selected tests start at once in a thread pool, so the module
runs in well under a minute on two cores. netwatch runs through ``run_replay`` with GeoIP
off (enrichment does not change packet counts).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import pytest

from netwatch.config import Config
from netwatch.enrich.geo import NullGeo
from netwatch.replay import ReplaySummary, run_replay
from netwatch.testing import pcapgen as g
from tests.conftest import PCAP_CORPUS, REPO, corpus_file, list_captures
from tests.integration import tshark
from tests.integration.tshark import HEADER_PROTOCOLS, TSHARK, ConvKey, Dissection

pytestmark = [
    pytest.mark.tshark,
    pytest.mark.skipif(
        TSHARK is None, reason="tshark is not installed (apt install tshark): parity needs it"
    ),
]

ABSENT = "(corpus absent)"
NO_REPO_PCAPS = "(no pcaps/ captures)"
BENCH_PACKETS = 20_000
NO_GEO_CONFIG = "geoip:\n  builtin: false\n"  # the CLI runs: GeoIP does not change counts


CORPUS = list_captures(PCAP_CORPUS) or [ABSENT]
MALFORMED = [rel for rel in CORPUS if rel.startswith("malformed/")] or [ABSENT]
REPO_PCAPS = list_captures(REPO / "pcaps") or [NO_REPO_PCAPS]


@dataclass(frozen=True, slots=True)
class Expected:
    """A documented semantic difference: per conversation, (tshark count, netwatch count)."""

    why: str
    diffs: Mapping[ConvKey, tuple[int, int]]


EXPECTED_DIFFS: Mapping[str, Expected] = MappingProxyType(
    {
        "malformed/zeek_tcp-truncated-header.pcap": Expected(
            why=(
                "frame 1 (the SYN) was captured with 68 of its 74 bytes: the 20-byte TCP fixed "
                "header is complete but the options are cut by the snaplen. tshark's TCP "
                "dissector throws on the options ('[Packet size limited during capture: TCP "
                "truncated]') before its conversation tap runs; netwatch reads only the fixed "
                "header (ports, flags, seq, window), all captured, and counts the SYN."
            ),
            diffs={("128.3.26.249", 25, "201.186.157.67", 60827, "tcp"): (23, 24)},
        ),
    }
)

#: Captures where netwatch is wrong: file -> the bug (marked xfail(strict=True) until fixed).
#: Empty since commit 8100cc6 fixed the one found (fragmented ERSPAN in zeek_erspan.pcap: the
#: later fragments of a fragmented GRE packet formed an outer IP-proto-47 "flow" instead of
#: joining the inner flow of their first fragment).
NETWATCH_BUGS: Mapping[str, str] = MappingProxyType({})

#: Malformed captures where tshark's header defect is not a netwatch decode failure.
DEFECT_NOT_A_FAILURE: Mapping[str, str] = MappingProxyType(
    {
        "malformed/zeek_tcp-truncated-header.pcap": (
            "only the TCP options of the SYN are cut by the snaplen; netwatch needs the fixed "
            "header, which is complete, so it attributes the frame (see EXPECTED_DIFFS)"
        ),
    }
)

#: Malformed captures where netwatch should count a failure and does not (xfail until fixed).
#: Empty since commit 8100cc6 fixed the one found (tcpdump_ipv6_frag6_negative_len.pcap: an
#: IPv6 payload length of 0 followed by a Fragment header was taken as a jumbogram/TSO length
#: and the fuzzed frame became a bogus IP-proto-2 flow).
MISSED_FAILURE_BUGS: Mapping[str, str] = MappingProxyType({})


def _marked(rels: list[str], bugs: Mapping[str, str]) -> list[object]:
    return [
        pytest.param(rel, marks=pytest.mark.xfail(strict=True, reason=bugs[rel]))
        if rel in bugs
        else rel
        for rel in rels
    ]


# -- running tshark and the CLI in the background ----------------------------------------------


class Background:
    """tshark dissections and CLI replays, started at once and awaited per test."""

    def __init__(self, workers: int, config: Path, cli_flows: Path) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers)
        self._config = config
        self.cli_flows = cli_flows
        self._dissections: dict[Path, Future[Dissection]] = {}
        self._cli: dict[tuple[Path, ...], Future[subprocess.CompletedProcess[str]]] = {}

    def start_dissection(self, path: Path) -> None:
        """Start tshark on ``path`` unless it already runs."""
        if path not in self._dissections:
            self._dissections[path] = self._pool.submit(tshark.dissect, path)

    def start_cli(self, paths: tuple[Path, ...], flows: Path) -> None:
        """Start one ``netwatch replay PATH... --flows FLOWS`` unless it already runs."""
        if paths not in self._cli:
            cmd = [
                sys.executable,
                "-m",
                "netwatch",
                "replay",
                "-c",
                str(self._config),
                "--flows",
                str(flows),
                *map(str, paths),
            ]
            self._cli[paths] = self._pool.submit(
                subprocess.run, cmd, capture_output=True, text=True, timeout=300, check=False
            )

    def dissection(self, path: Path) -> Dissection:
        """tshark's view of ``path`` (waits for it)."""
        self.start_dissection(path)
        return self._dissections[path].result()

    def cli(self, paths: tuple[Path, ...], flows: Path) -> subprocess.CompletedProcess[str]:
        """The finished CLI replay of ``paths``."""
        self.start_cli(paths, flows)
        return self._cli[paths].result()

    def close(self) -> None:
        """Stop: drop what has not started, wait for what runs."""
        self._pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope="module")
def background(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Background]:
    """Starts tshark (and the CLI for malformed files) for every selected corpus test."""
    config = tmp_path_factory.mktemp("cli") / "no-geo.yaml"
    config.write_text(NO_GEO_CONFIG)
    bg = Background(os.cpu_count() or 2, config, config.parent / "malformed.flows.jsonl")
    mine = [
        item
        for item in request.session.items
        if isinstance(item, pytest.Function) and item.module is request.module
    ]
    names = {item.originalname for item in mine}
    if "test_malformed_captures_through_the_cli" in names and PCAP_CORPUS.is_dir():
        bg.start_cli(
            malformed_paths(), bg.cli_flows
        )  # one process: ~1 s of start-up saved per file
    if "test_bench_site_parity" in names:
        bg.start_dissection(request.getfixturevalue("site_pcap"))  # the largest: start first
    for item in mine:
        callspec = getattr(item, "callspec", None)
        rel = callspec.params.get("rel") if callspec is not None else None
        if not isinstance(rel, str) or rel in (ABSENT, NO_REPO_PCAPS):
            continue
        if item.originalname == "test_repo_pcap_parity":
            bg.start_dissection(REPO / "pcaps" / rel)
        else:  # the corpus parity and header-defect tests
            bg.start_dissection(PCAP_CORPUS / rel)
    yield bg
    bg.close()


# -- the comparison ------------------------------------------------------------------------------


def replay(path: Path, out_dir: Path) -> tuple[ReplaySummary, Counter[ConvKey]]:
    """netwatch's per-5-tuple TCP/UDP packet counts for ``path`` (Python API, GeoIP off)."""
    flows = out_dir / f"{path.name}.flows.jsonl"
    summary = run_replay([path], Config.default(), flows_out=flows, geo=NullGeo(), uid_seed=1)
    records = [json.loads(line) for line in flows.read_text().splitlines()]
    return summary, tshark.flow_conversations(records)


def differences(want: Counter[ConvKey], got: Counter[ConvKey]) -> dict[ConvKey, tuple[int, int]]:
    """Every conversation whose counts differ: key -> (tshark, netwatch)."""
    return {k: (want[k], got[k]) for k in sorted(set(want) | set(got)) if want[k] != got[k]}


def _describe(diffs: Mapping[ConvKey, tuple[int, int]]) -> str:
    return "\n".join(f"  {k}: tshark {t}, netwatch {n}" for k, (t, n) in diffs.items())


def assert_parity(
    name: str, dis: Dissection, summary: ReplaySummary, mine: Counter[ConvKey]
) -> None:
    """Frames read and per-conversation counts equal tshark's, up to documented differences."""
    assert summary.packets == len(dis.frames), (
        f"{name}: netwatch read {summary.packets} frames, tshark {len(dis.frames)}"
    )
    expected = EXPECTED_DIFFS.get(name)
    want = dict(expected.diffs) if expected is not None else {}
    got = differences(dis.expected(), mine)
    why = f" ({expected.why})" if expected is not None else ""
    assert got == want, (
        f"{name}: per-conversation packet counts differ from tshark's:\n{_describe(got)}\n"
        f"documented differences{why}:\n{_describe(want) or '  none'}"
    )


# -- tests ---------------------------------------------------------------------------------------


@pytest.mark.corpus
@pytest.mark.parametrize("rel", _marked(CORPUS, NETWATCH_BUGS))
def test_corpus_parity(rel: str, pcap_corpus: Path, background: Background, tmp_path: Path) -> None:
    path = corpus_file("pcaps", *rel.split("/"))
    summary, mine = replay(path, tmp_path)
    assert_parity(rel, background.dissection(path), summary, mine)


@pytest.mark.parametrize("rel", REPO_PCAPS)
def test_repo_pcap_parity(rel: str, background: Background, tmp_path: Path) -> None:
    if rel == NO_REPO_PCAPS:
        pytest.skip("the repository has no committed pcaps/**/*.pcap captures")
    path = REPO / "pcaps" / rel
    summary, mine = replay(path, tmp_path)
    assert mine, f"{rel}: no TCP/UDP flows at all"
    assert_parity(rel, background.dissection(path), summary, mine)


@pytest.fixture(scope="module")
def site_pcap(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 20,000-packet camera site from the benchmark generator (VLANs, IPv6, TLS, RTP...)."""
    out = tmp_path_factory.mktemp("bench") / "site.pcap"
    subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "gen_site_pcap.py"),
            str(out),
            "--packets",
            str(BENCH_PACKETS),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return out


def test_bench_site_parity(site_pcap: Path, background: Background, tmp_path: Path) -> None:
    background.start_dissection(site_pcap)
    summary, mine = replay(site_pcap, tmp_path)
    assert summary.packets == BENCH_PACKETS
    assert len(mine) > 100, "the generated site should have hundreds of TCP/UDP flows"
    assert_parity("bench/site.pcap", background.dissection(site_pcap), summary, mine)


# A VXLAN packet and a GRE packet whose *outer* IPv4 datagram is fragmented (as a mirror
# session sends full-size frames over a 1500-byte path), each carrying one inner UDP datagram.
OUTER_A, OUTER_B = "192.0.2.1", "192.0.2.2"
INNER_C, INNER_D = "10.1.1.1", "10.1.1.2"
MAC_A, MAC_B = "02:00:00:00:00:01", "02:00:00:00:00:02"


def _fragmented_tunnels() -> list[bytes]:
    a, b, c, d = (g.ip_bytes(x) for x in (OUTER_A, OUTER_B, INNER_C, INNER_D))
    ma, mb = g.mac_bytes(MAC_A), g.mac_bytes(MAC_B)

    def inner(sport: int) -> bytes:
        return g.ipv4(c, d, g.IPPROTO_UDP, g.udp_datagram(c, d, sport, 53, b"q" * 1000))

    vxlan = b"\x08\x00\x00\x00\x00\x00\x01\x00" + g.ethernet(mb, ma, g.ETH_P_IPV4, inner(1000))
    gre = b"\x00\x00\x08\x00" + inner(2000)
    outer = [
        (g.IPPROTO_UDP, g.udp_datagram(a, b, 50000, 4789, vxlan), 77),
        (47, gre, 78),
    ]
    return [
        g.ethernet(mb, ma, g.ETH_P_IPV4, frag)
        for proto, payload, ident in outer
        for frag in g.ipv4_fragments(a, b, proto, payload, mtu=600, ident=ident)
    ]


def test_fragmented_tunnel_parity(background: Background, tmp_path: Path) -> None:
    """A fragmented tunnel packet counts once, whole, in its inner flow (and, for VXLAN, in
    its outer UDP flow), as Zeek counts it (regression of 8100cc6: its later fragments were
    orphaned for VXLAN, an outer GRE flow)."""
    path = tmp_path / "fragmented-tunnels.pcap"
    with path.open("wb") as fh, g.PcapWriter(fh) as writer:
        for i, frame in enumerate(_fragmented_tunnels()):
            writer.write(1_700_000_000_000_000 + i * 1000, frame)
    dis = background.dissection(path)
    inner = {tshark.conv_key(INNER_C, p, INNER_D, 53, "udp") for p in (1000, 2000)}
    outer = tshark.conv_key(OUTER_A, 50000, OUTER_B, 4789, "udp")
    assert dis.expected() == dict.fromkeys({*inner, outer}, 1), "one packet per conversation"
    summary, mine = replay(path, tmp_path)
    assert_parity("fragmented-tunnels.pcap", dis, summary, mine)


def test_fragmented_icmp_datagram_is_one_flow(background: Background, tmp_path: Path) -> None:
    """Regression (fixed in 8100cc6): the later fragments of an ICMP error (type 3) were
    keyed on their own header (ICMP 'type' 0, the echo-reply key), splitting the datagram."""
    a, b = g.ip_bytes(OUTER_A), g.ip_bytes(OUTER_B)
    ma, mb = g.mac_bytes(MAC_A), g.mac_bytes(MAC_B)
    unreachable = bytes([3, 3, 0, 0, 0, 0, 0, 0]) + b"z" * 1200
    path = tmp_path / "fragmented-icmp.pcap"
    with path.open("wb") as fh, g.PcapWriter(fh) as writer:
        for i, frag in enumerate(
            g.ipv4_fragments(a, b, g.IPPROTO_ICMP, unreachable, mtu=600, ident=9)
        ):
            writer.write(1_700_000_000_000_000 + i * 1000, g.ethernet(mb, ma, g.ETH_P_IPV4, frag))
    datagrams = Counter(d for f in background.dissection(path).frames for d, _ in f.fragments)
    assert list(datagrams.values()) == [3], "tshark: three fragments of one datagram"
    flows = tmp_path / "flows.jsonl"
    run_replay([path], Config.default(), flows_out=flows, geo=NullGeo(), uid_seed=1)
    records = [json.loads(line) for line in flows.read_text().splitlines()]
    counts = [(r["id.orig_p"], r["orig_pkts"] + r["resp_pkts"]) for r in records]
    assert counts == [(3, 3)], "one ICMP flow (type 3) holding all three fragments"


_FAILURES = re.compile(r"^decode failures: (\d+)", re.MULTILINE)


def malformed_paths() -> tuple[Path, ...]:
    """The malformed corpus captures, in a stable order."""
    return tuple(PCAP_CORPUS / rel for rel in MALFORMED if rel != ABSENT)


@pytest.mark.corpus
def test_malformed_captures_through_the_cli(pcap_corpus: Path, background: Background) -> None:
    """``netwatch replay`` on every malformed capture: no crash, exit 0, failures counted.

    One process replays them all, which saves a second of interpreter start-up per file: a
    crash or error exit on any file fails this test (replay them one by one to find it).
    The per-file checks (no exception, failures counted) go through the API below.
    """
    paths = malformed_paths()
    done = background.cli(paths, background.cli_flows)
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr
    assert f"files: {len(paths)} " in done.stdout, done.stdout
    failures = _FAILURES.search(done.stdout)
    assert failures is not None, f"no summary on stdout:\n{done.stdout}"
    assert int(failures[1]) > 0, "the malformed captures must produce counted decode failures"
    records = [json.loads(line) for line in background.cli_flows.read_text().splitlines()]
    assert records, "the flow log of the malformed captures is empty"
    assert all(r["orig_pkts"] + r["resp_pkts"] > 0 for r in records)


@pytest.mark.corpus
@pytest.mark.parametrize("rel", _marked(MALFORMED, MISSED_FAILURE_BUGS))
def test_malformed_header_defects_are_counted(
    rel: str, pcap_corpus: Path, background: Background, tmp_path: Path
) -> None:
    path = corpus_file("pcaps", *rel.split("/"))
    dis = background.dissection(path)
    defects = dis.defect_frames(HEADER_PROTOCOLS)
    summary, _ = replay(path, tmp_path)
    failures = sum(summary.decode_failures.values())
    if rel in DEFECT_NOT_A_FAILURE:
        assert (defects, failures) == (1, 0), DEFECT_NOT_A_FAILURE[rel]
        return
    # Every frame tshark marks defective in a header layer netwatch decodes must be one of
    # netwatch's counted failures (netwatch may count more: its own stricter checks).
    assert failures >= defects, (
        f"{rel}: tshark marks {defects} frame(s) malformed/short in a header layer "
        f"({dict(dis.defects())}) but netwatch counted {failures} decode failure(s): "
        f"{summary.decode_failures}"
    )
    if defects:
        assert failures > 0
