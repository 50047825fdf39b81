"""Every real capture replays through ``run_replay``, and every packet read is accounted for.

Conservation (DESIGN.md habit 9): each frame read from a capture ends up in exactly one
place: in a flow (``orig_pkts + resp_pkts`` of the flow records), as a counted decode failure
(``decode_failures``, including fragments whose first fragment never came), or as a
non-IP frame (``non_ip``). So for every capture::

    summary.packets == sum(flow packets) + sum(decode_failures) + sum(non_ip)

A capture that breaks this equation has a frame that netwatch lost (or counted twice): a
netwatch bug. The check runs on every capture of ``../shared/corpus/pcaps`` (skipped with a
clear reason when the corpus is absent), on the committed ``pcaps/**`` captures, and on a
small synthetic capture made of the decoder's awkward cases (a UDP 4789 packet that is not
VXLAN, fragmented tunnels, a later fragment before its first, an orphan fragment, ICMP
fragments, a truncated frame, ARP). Classic pcap files go through the fused memory-mapped
loop, pcapng files through the general one, so both loops are covered.

The default configuration is used, GeoIP included (one built-in backend shared by the
module, loaded once). Reads no other config.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from netwatch.config import Config
from netwatch.enrich.geo import GeoBackend
from netwatch.pipeline import geo_backend
from netwatch.replay import ReplaySummary, run_replay
from netwatch.testing import pcapgen as g
from tests.conftest import PCAP_CORPUS, REPO, corpus_file, list_captures

ABSENT = "(corpus absent)"
NO_REPO_PCAPS = "(no pcaps/ captures)"


CORPUS = list_captures(PCAP_CORPUS) or [ABSENT]
REPO_PCAPS = list_captures(REPO / "pcaps") or [NO_REPO_PCAPS]


@pytest.fixture(scope="module")
def geo() -> Iterator[GeoBackend]:
    """The default GeoIP backend, loaded once for the whole module."""
    backend = geo_backend(Config.default())
    backend.describe()
    yield backend


def replay(
    path: Path, out_dir: Path, geo: GeoBackend
) -> tuple[ReplaySummary, list[dict[str, int]]]:
    """Replay one capture with the default config; return the summary and the flow records."""
    flows = out_dir / f"{path.name}.flows.jsonl"
    summary = run_replay([path], Config.default(), flows_out=flows, geo=geo, uid_seed=1)
    records = [json.loads(line) for line in flows.read_text().splitlines()]
    return summary, records


def assert_conserved(name: str, summary: ReplaySummary, records: list[dict[str, int]]) -> None:
    """Every packet read is in a flow, a counted failure or a counted non-IP frame. A
    tunnel's outer datagram is in its outer flow too (``outer_packets``: counted twice), and
    the fragments of a tunnel datagram count once, whole (``fragments_folded``)."""
    in_flows = sum(r["orig_pkts"] + r["resp_pkts"] for r in records)
    failures = sum(summary.decode_failures.values())
    non_ip = sum(summary.non_ip.values())
    twice = summary.tunnels.get("outer_packets", 0)
    folded = summary.tunnels.get("fragments_folded", 0)
    assert summary.flows == len(records), f"{name}: summary and flow log disagree"
    assert summary.packets == in_flows - twice + folded + failures + non_ip, (
        f"{name}: {summary.packets} packets read, but {in_flows} in flows - {twice} outer "
        f"+ {folded} folded fragments + {failures} failures {summary.decode_failures} + "
        f"{non_ip} non-IP {summary.non_ip} = {in_flows - twice + folded + failures + non_ip}"
    )


@pytest.mark.corpus
@pytest.mark.parametrize("rel", CORPUS)
def test_corpus_capture_is_conserved(
    rel: str, pcap_corpus: Path, geo: GeoBackend, tmp_path: Path
) -> None:
    path = corpus_file("pcaps", *rel.split("/"))
    summary, records = replay(path, tmp_path, geo)
    assert summary.packets > 0, f"{rel}: no packets read"
    assert_conserved(rel, summary, records)


@pytest.mark.parametrize("rel", REPO_PCAPS)
def test_repo_capture_is_conserved(rel: str, geo: GeoBackend, tmp_path: Path) -> None:
    if rel == NO_REPO_PCAPS:
        pytest.skip("the repository has no committed pcaps/**/*.pcap captures")
    summary, records = replay(REPO / "pcaps" / rel, tmp_path, geo)
    assert records, f"{rel}: no flows"
    assert_conserved(rel, summary, records)


# -- the decoder's awkward cases, in one synthetic capture -------------------------------------

A, B, C, D = "192.0.2.1", "192.0.2.2", "10.1.1.1", "10.1.1.2"
MAC_A, MAC_B = g.mac_bytes("02:00:00:00:00:01"), g.mac_bytes("02:00:00:00:00:02")


def _eth(packet: bytes) -> bytes:
    return g.ethernet(MAC_B, MAC_A, g.ETH_P_IPV4, packet)


def _inner_udp(sport: int) -> bytes:
    c, d = g.ip_bytes(C), g.ip_bytes(D)
    return g.ipv4(c, d, g.IPPROTO_UDP, g.udp_datagram(c, d, sport, 53, b"q" * 1000))


def _fragments(proto: int, payload: bytes, ident: int) -> list[bytes]:
    a, b = g.ip_bytes(A), g.ip_bytes(B)
    return [_eth(f) for f in g.ipv4_fragments(a, b, proto, payload, mtu=600, ident=ident)]


def edge_case_frames() -> list[bytes]:
    """Frames that take the decoder's rarely used exits; 12 frames in all."""
    a, b = g.ip_bytes(A), g.ip_bytes(B)
    not_vxlan = _eth(g.ipv4(a, b, g.IPPROTO_UDP, g.udp_datagram(a, b, 40000, 4789, bytes(30))))
    vxlan = b"\x08\x00\x00\x00\x00\x00\x01\x00" + g.ethernet(
        MAC_B, MAC_A, g.ETH_P_IPV4, _inner_udp(1000)
    )
    vxlan_frags = _fragments(g.IPPROTO_UDP, g.udp_datagram(a, b, 50000, 4789, vxlan), 77)
    gre_frags = _fragments(47, b"\x00\x00\x08\x00" + _inner_udp(2000), 78)
    udp_frags = _fragments(g.IPPROTO_UDP, g.udp_datagram(a, b, 3000, 53, b"u" * 1000), 79)
    orphan = _fragments(g.IPPROTO_UDP, g.udp_datagram(a, b, 4000, 53, b"o" * 1000), 80)[1]
    icmp_frags = _fragments(g.IPPROTO_ICMP, bytes([3, 3, 0, 0, 0, 0, 0, 0]) + b"z" * 700, 81)
    arp = g.arp_frame(1, "02:00:00:00:00:01", A, B)
    return [
        not_vxlan,
        *vxlan_frags,
        *gre_frags,
        udp_frags[1],
        udp_frags[0],  # a later fragment before its first: held, then released
        orphan,  # its first fragment never comes: counted as orphaned at the end
        *icmp_frags,
        b"\x00" * 10,  # shorter than an Ethernet header
        arp,
    ]


def test_edge_case_capture_is_conserved(geo: GeoBackend, tmp_path: Path) -> None:
    frames = edge_case_frames()
    path = tmp_path / "edge-cases.pcap"
    with path.open("wb") as fh, g.PcapWriter(fh) as writer:
        for i, frame in enumerate(frames):
            writer.write(1_700_000_000_000_000 + i * 1000, frame)
    summary, records = replay(path, tmp_path, geo)
    assert summary.packets == len(frames) == 12
    assert summary.non_ip == {"arp": 1}
    assert summary.decode_failures, "the malformed and orphan frames must be counted"
    assert_conserved("edge-cases.pcap", summary, records)


def test_fragment_table_overflow_is_conserved(geo: GeoBackend, tmp_path: Path) -> None:
    """Five complete fragmented datagrams through a two-entry fragment table."""
    a, b = g.ip_bytes(A), g.ip_bytes(B)
    path = tmp_path / "fragment-overflow.pcap"
    with path.open("wb") as fh, g.PcapWriter(fh) as writer:
        for i in range(5):
            datagram = g.udp_datagram(a, b, 1000 + i, 53, b"x" * 1000)
            for j, frag in enumerate(_fragments(g.IPPROTO_UDP, datagram, 100 + i)):
                writer.write(1_700_000_000_000_000 + (2 * i + j) * 1000, frag)
    config = tmp_path / "small-fragment-table.yaml"
    config.write_text("flows:\n  max_fragments: 2\n")
    flows = tmp_path / "flows.jsonl"
    summary = run_replay([path], Config.load(config), flows_out=flows, geo=geo, uid_seed=1)
    records = [json.loads(line) for line in flows.read_text().splitlines()]
    assert sum(r["orig_pkts"] + r["resp_pkts"] for r in records) == summary.packets == 10
    assert_conserved("fragment-overflow.pcap", summary, records)
