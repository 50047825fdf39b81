"""Orientation against Zeek's own conn.log baselines (../shared/corpus/zeek, BSD-3-Clause).

For the traces whose baselines show Zeek's port rule at work (history ``^``: DHCP server
replies, a server's mid-stream data, AYIYA and Teredo servers answering first, HTTP on an
IRC port without the SYN), every TCP/UDP connection Zeek logs (for tunnels: the outer
UDP ones, netwatch does not unwrap Teredo/AYIYA yet) must have the same
originator and responder in netwatch's flow records, and ``^`` exactly where Zeek has it.
The traces' baselines were made with all the analyzers these ports belong to loaded.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from netwatch.testing.zeekconn import read_conn_log, replay_trace
from tests.conftest import corpus_file

BOTH, OUTER = frozenset({"tcp", "udp"}), frozenset({"udp"})  # tunnels: the outer flows
CASES = [
    ("dhcp/dhcp.pcap", "scripts.base.protocols.dhcp.dhcp-all-msg-types/conn.log", BOTH),
    ("tcp/http-on-irc-port-missing-syn.pcapng", "core.tcp.flip-without-syn/conn.log", BOTH),
    ("tunnels/ayiya3.pcap", "core.tunnels.ayiya/conn.log", OUTER),
    (
        "tunnels/teredo_bubble_with_payload.pcap",
        "core.tunnels.teredo_bubble_with_payload/conn.log",
        OUTER,
    ),
    ("mpls-in-vlan.pcap", "core.mpls-in-vlan/conn.log", BOTH),
]

Ends = tuple[str, int, str, int, str]
Conns = dict[frozenset[tuple[str, int]], tuple[Ends, str]]


def zeek_conns(baseline: Path, protos: frozenset[str]) -> Conns:
    out: Conns = {}
    for row in read_conn_log(baseline).rows:
        if row["proto"] not in protos:
            continue
        o, r = (row["id.orig_h"], int(row["id.orig_p"])), (row["id.resp_h"], int(row["id.resp_p"]))
        out[frozenset((o, r))] = ((*o, *r, row["proto"]), row["history"])
    return out


def netwatch_conns(trace: Path) -> Conns:
    out: Conns = {}
    for rec in replay_trace(trace):
        o = (str(rec["id.orig_h"]), int(str(rec["id.orig_p"])))
        r = (str(rec["id.resp_h"]), int(str(rec["id.resp_p"])))
        out.setdefault(frozenset((o, r)), ((*o, *r, str(rec["proto"])), str(rec["history"])))
    return out


@pytest.mark.parametrize(("trace", "baseline", "protos"), CASES)
def test_orientation_and_caret_as_zeek(trace: str, baseline: str, protos: frozenset[str]) -> None:
    expected = zeek_conns(corpus_file("zeek", "baselines", *baseline.split("/")), protos)
    ours = netwatch_conns(corpus_file("zeek", "traces", *trace.split("/")))
    assert any("^" in history for _, history in expected.values())
    for key, (ends, history) in expected.items():
        assert key in ours, ends
        got_ends, got_history = ours[key]
        assert got_ends == ends
        assert got_history.startswith("^") == history.startswith("^"), (ends, got_history)
