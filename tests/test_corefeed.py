"""The loop fed by the compiled core must be invisible too: flow records, alerts and kept
evidence equal the general path's, on generated traffic, pcaps/, the corpus and Zeek's
traces (the same captures as tests/test_fastloop.py)."""

from __future__ import annotations

import gc
import heapq
import random
import re
import struct
import sys
import tracemalloc
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from netwatch import core, corefeed
from netwatch.alerts.evidence import EvidenceStore
from netwatch.capture.files import MappedPcap, open_capture
from netwatch.capture.pcap import MAX_CAPLEN, PcapHeader, ReadStats
from netwatch.config import Config
from netwatch.core import FastStatus
from netwatch.corefeed import BATCH, PYTHON_FAST, fast_loop, run_core
from netwatch.enrich.geo import NullGeo
from netwatch.fastloop import run_mapped
from netwatch.flow import table as flow_table
from netwatch.flow.ids import UidSource
from netwatch.flow.table import Flow, FlowTable, PyFlow
from netwatch.flow.tcpstate import Endpoint, PyEndpoint
from netwatch.pipeline import Pipeline
from netwatch.testing import pcapgen as g
from tests.test_core import _needs_core
from tests.test_fastloop import (
    endian_and_tick_files,
    evidence_run,
    real_captures,
    run_one_way,
    site_capture,
    zeek_traces,
)

__all__ = ["_needs_core", "site_capture"]  # the fixtures this module uses

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _check_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test here has ``run_core`` try Python's fast branch after C's COND and NO_TCP
    hand-backs too, so that :func:`assert_same_conditions` can see C is not stricter (the
    default loop skips that try: ``test_without_pythons_second_try``)."""
    monkeypatch.setattr(corefeed, "CHECK_FAST", True)


def both_ways(
    path: Path, cfg: Config | None = None, *, check: bool = True
) -> tuple[list[Any], list[Any]]:
    """(C-fed loop, general path): records, packets counted, decoder failures. Checks that
    C and Python agree on the fast branch (:func:`assert_same_conditions`) unless ``check``
    is false: then the C-fed loop runs as by default, without Python's second try."""
    out: list[list[Any]] = []
    for fused in (True, False):
        recs: list[dict[str, Any]] = []
        pipe = Pipeline(cfg or Config.default(), recs.append, geo=NullGeo(), uids=UidSource(3))
        pipe.run_mapped = run_core
        before = list(PYTHON_FAST)
        corefeed.CHECK_FAST = check
        cap = run_one_way(pipe, path, fused)
        corefeed.CHECK_FAST = True
        assert_same_conditions(before)
        assert cap.stats.records == pipe.stats.packets
        out.append([recs, pipe.stats.packets, pipe.decoder.failures])
    return out[0], out[1]


def assert_same_conditions(before: list[int]) -> None:
    """No packet C handed back as odd, new, without TCP endpoints or failing the fast
    branch's conditions was then taken by Python's fast branch: C is not stricter than
    Python (a C that is laxer changes the records)."""
    for reason in (FastStatus.ODD, FastStatus.NEW, FastStatus.NO_TCP, FastStatus.COND):
        assert PYTHON_FAST[reason] == before[reason], reason.name


def test_the_default_loop_unless_netwatch_core_python(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NETWATCH_CORE", raising=False)
    assert Pipeline(Config.default(), print).run_mapped is run_core
    assert core.describe() == "core: c"
    monkeypatch.setenv("NETWATCH_CORE", "c")
    assert Pipeline(Config.default(), print).run_mapped is run_core
    monkeypatch.setenv("NETWATCH_CORE", "python")
    assert Pipeline(Config.default(), print).run_mapped is run_mapped
    assert core.describe() == "core: python (NETWATCH_CORE=python)"


def test_site_capture(site_capture: Path) -> None:
    fused, general = both_ways(site_capture)
    assert fused == general
    assert len(fused[0]) > 100 and fused[1] > BATCH  # more than one batch


def test_site_capture_with_short_timeouts_and_small_table(
    site_capture: Path, tmp_path: Path
) -> None:
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(
        "flows: {max_flows: 50, udp_idle_s: 0.5, tcp_idle_s: 1, "
        "tcp_closed_s: 0.2, active_timeout_s: 2}\ndeep: {max_payload_packets: 1}\n"
    )
    fused, general = both_ways(site_capture, Config.load(cfg_file))
    assert fused == general


def test_evidence_and_alerts(site_capture: Path, tmp_path: Path) -> None:
    out = []
    for fused in (True, False):
        store = EvidenceStore(tmp_path / str(fused))
        store.open()
        out.append(_evidence(site_capture, store, fused))
    assert out[0] == out[1]
    assert out[0][3] > 1000


def _evidence(path: Path, store: EvidenceStore, fused: bool) -> list[Any]:
    """tests.test_fastloop.evidence_run with the C-fed loop selected."""
    original = Pipeline.__init__

    def init(self: Pipeline, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.run_mapped = run_core

    Pipeline.__init__ = init  # type: ignore[method-assign]
    try:
        return evidence_run(path, store, fused)
    finally:
        Pipeline.__init__ = original  # type: ignore[method-assign]


def test_bundled_captures() -> None:
    paths = sorted(p for p in (REPO / "pcaps").rglob("*.pcap") if p.is_file())
    assert paths
    for path in paths:
        fused, general = both_ways(path)
        assert fused == general, path.name


def test_odd_records_empty_records_and_truncated_tail(tmp_path: Path) -> None:
    route = g.Route.of("bc:ad:28:00:00:01", "10.0.0.5", "00:11:22:33:44:55", "10.0.0.9", (7,))
    s = g.TcpSession(route, 1000, 80)
    frames = [*s.handshake(), *s.send(True, b"x" * 3000), *s.send(False, b"y" * 100)]
    frames += s.close(True)
    parts = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 64, 1)]
    for i, frame in enumerate(frames):
        cut = frame[:64]
        parts.append(struct.pack("<IIII", 1, i * 1000, len(cut), len(frame)) + cut)
        if i == 3:
            parts.append(struct.pack("<IIII", 1, i * 1000, 0, 0))  # an empty record
    path = tmp_path / "t.pcap"
    path.write_bytes(b"".join(parts)[:-10])  # cut inside the last record
    fused, general = both_ways(path)
    assert fused == general


def test_big_endian_and_nanosecond_files(tmp_path: Path) -> None:
    paths, frames = endian_and_tick_files(tmp_path)
    for path in paths:
        fused, general = both_ways(path)
        assert fused == general
        assert fused[1] == frames


def test_every_real_capture(pcap_corpus: Path) -> None:
    for path in real_captures(pcap_corpus):
        fused, general = both_ways(path)
        assert fused == general, path.name


def test_every_zeek_trace() -> None:
    for path in zeek_traces():
        fused, general = both_ways(path)
        assert fused == general, path.name


def test_without_pythons_second_try(site_capture: Path, pcap_corpus: Path) -> None:
    """The default loop (no second try of Python's fast branch after C's COND and NO_TCP
    hand-backs: they go to the general path at once) gives the general path's records on
    the site capture, pcaps/, the corpus and Zeek's traces; the second try, had it been
    made, would have found nothing to take (PYTHON_FAST unchanged with it on)."""
    paths = [site_capture, *sorted((REPO / "pcaps").rglob("*.pcap"))]
    paths += [*real_captures(pcap_corpus), *zeek_traces()]
    for path in paths:
        fused, general = both_ways(path, check=False)
        assert fused == general, path.name


# -- the hand-back reasons, one by one ------------------------------------------------------

ROUTE = g.Route.of("bc:ad:28:00:00:01", "10.0.0.5", "00:11:22:33:44:55", "10.0.0.9", (7,))
ROUTE6 = g.Route.of("bc:ad:28:00:00:02", "fd00::5", "00:11:22:33:44:56", "fd00::9")
Frames = list[tuple[float, bytes]]  # (time, frame)


def pcap_bytes(frames: Frames) -> bytes:
    """A little-endian microsecond classic pcap of the frames."""
    parts = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for ts, frame in frames:
        sec, usec = divmod(round(ts * 1_000_000), 1_000_000)
        parts.append(struct.pack("<IIII", sec, usec, len(frame), len(frame)) + frame)
    return b"".join(parts)


def mapped(frames: Frames) -> MappedPcap:
    data = pcap_bytes(frames)
    return MappedPcap(data, 24, len(data), PcapHeader.parse(data[:24]), ReadStats())


def traffic(t0: float, step: float, rounds: int) -> Frames:
    """A TCP session with data both ways (over IPv4 with a VLAN tag), and a UDP stream over
    IPv6, interleaved, ``step`` seconds apart."""
    s = g.TcpSession(ROUTE, 40000, 554)
    frames = [*s.handshake()]
    for i in range(rounds):
        frames += s.send(True, b"c" * 300)
        frames += s.send(False, b"s" * 1200)
        frames.append(s.ack(True))
        frames.append(g.udp_frame(ROUTE6, 50000 + i % 2, 6000, b"r" * 200))
    return [(t0 + i * step, frame) for i, frame in enumerate(frames)]


Tamper = Callable[[Pipeline], None]


def twin_runs(first: Frames, second: Frames, tamper: Tamper) -> tuple[list[Any], list[int]]:
    """Both halves through the C loop, and the second through the Python fused loop, after
    ``tamper`` changed the flows the first half made; returns the records of both (which
    must be equal) and how often C returned with each status in the second half."""
    out: list[Any] = []
    reasons: list[int] = []
    for loop in (run_core, run_mapped):
        recs: list[dict[str, Any]] = []
        pipe = Pipeline(Config.default(), recs.append, geo=NullGeo(), uids=UidSource(3))
        run_core(pipe, mapped(first))
        tamper(pipe)
        before, python_before = fast_loop().reasons(), list(PYTHON_FAST)
        loop(pipe, mapped(second))
        if loop is run_core:
            assert_same_conditions(python_before)
            reasons = [b - a for a, b in zip(before, fast_loop().reasons(), strict=True)]
        pipe.finish()
        out.append(recs)
    assert out[0] == out[1]
    assert out[0]
    return out[0], reasons


def _flows(pipe: Pipeline, proto: int) -> list[Flow]:
    return [f for f in pipe.table.flows.values() if f.proto == proto]


def _endpoints(pipe: Pipeline) -> tuple[Endpoint, Endpoint]:
    (f,) = _flows(pipe, 6)
    assert f.tcp is not None
    return f.tcp


def _split(frames: Frames) -> tuple[Frames, Frames]:
    return frames[: len(frames) // 2], frames[len(frames) // 2 :]


def _untouched(pipe: Pipeline) -> None:
    return None


def _big_seqmax(pipe: Pipeline) -> None:
    for e in _endpoints(pipe):
        e.seqmax += 1 << 70  # beyond what C reads: Python counts on


def _big_counter(pipe: Pipeline) -> None:
    for f in pipe.table.flows.values():
        f.o_pkts += 1 << 64


def _int_last(pipe: Pipeline) -> None:
    for f in pipe.table.flows.values():
        f.last = int(f.last)  # an int where C reads a float


def _odd_odir(pipe: Pipeline) -> None:
    for f in pipe.table.flows.values():
        f.odir = 1  # type: ignore[assignment]  # truthy, not True: `fwd is f.odir` fails


def _keeping(pipe: Pipeline) -> None:
    for f in pipe.table.flows.values():
        f.keep = 3  # no evidence store: the keeper stops keeping at the first frame


def _no_tcp(pipe: Pipeline) -> None:
    (f,) = _flows(pipe, 6)
    f.tcp = None


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (_big_seqmax, FastStatus.VALUE),
        (_big_counter, FastStatus.VALUE),
        (_int_last, FastStatus.VALUE),
        (_odd_odir, FastStatus.VALUE),
        (_keeping, FastStatus.KEEP),
        (_no_tcp, FastStatus.NO_TCP),
    ],
)
def test_hand_back_on_unexpected_state(tamper: Tamper, reason: FastStatus) -> None:
    first, second = _split(traffic(100.0, 0.001, 40))
    _, reasons = twin_runs(first, second, tamper)
    assert reasons[reason] > 0


def test_fast_branch_in_c_when_nothing_is_odd() -> None:
    first, second = _split(traffic(100.0, 0.001, 40))
    done, hits, flow_hits = fast_loop().fast, fast_loop().key_hits, fast_loop().flow_hits
    _, reasons = twin_runs(first, second, _untouched)
    assert fast_loop().fast - done > len(second) * 9 // 10
    assert fast_loop().key_hits - hits > len(second) * 8 // 10  # keys built once per flow
    assert fast_loop().flow_hits - flow_hits > len(second) * 8 // 10  # and no dict lookup
    assert reasons[FastStatus.END] == 1 and sum(reasons) == 1  # one call for all


def test_hand_back_at_each_sweep_mid_batch() -> None:
    first, second = _split(traffic(100.0, 0.3, 40))  # a periodic sweep every ~3 packets
    _, reasons = twin_runs(first, second, _untouched)
    assert reasons[FastStatus.SWEEP] >= 15  # one per second of packet time


def test_hand_back_of_odd_and_new_between_fast_ones() -> None:
    first, second = _split(traffic(100.0, 0.001, 40))
    arp = g.arp_frame(1, "bc:ad:28:00:00:01", "10.0.0.5", "10.0.0.9", vlans=(7,))
    ping = g.icmp_echo_frame(ROUTE, 7, 1, b"p" * 32)
    udp_new = [g.udp_frame(ROUTE, 7000 + i, 53, b"q" * 30) for i in range(3)]
    mixed = [second[0], (second[0][0], arp), second[1], (second[1][0], ping), *second[2:]]
    mixed += [(second[-1][0] + 0.001 * i, frame) for i, frame in enumerate(udp_new)]
    _, reasons = twin_runs(first, mixed, _untouched)
    assert reasons[FastStatus.ODD] == 2 and reasons[FastStatus.STARTED] == 3  # made in C


def test_hand_back_when_the_deep_parsers_want_the_payload() -> None:
    frames = traffic(100.0, 0.001, 40)
    _, reasons = twin_runs(frames[:1], frames[1:], _untouched)  # every packet after the SYN
    # the SYN-ACK's flow is the SYN's; the UDP flows: the first Python's (no UDP idle heap
    # yet), the second made in C
    assert reasons[FastStatus.NEW] == 1 and reasons[FastStatus.STARTED] == 1
    # the parsers' payloads: counted in C, the deep step Python's (the SYN-ACK is C's, and
    # so are the first payloads' D/d)
    assert reasons[FastStatus.DEEP] >= 2 and reasons[FastStatus.COND] == 0


def _ack_probe(server_isn: int, ack_delta: int, *, window: int = 64240) -> Frames:
    """A session, then a client ACK whose ack is ``ack_delta`` from the end of the data the
    server delivered (modulo 2**32), or a zero window; then more data both ways."""
    s = g.TcpSession(ROUTE, 40001, 80, server_isn=server_isn)
    frames = [*s.handshake(), *s.send(False, b"s" * 3000), s.ack(True)]
    pd = s.next_seq(False)
    probe = g.tcp_frame(
        ROUTE,
        40001,
        80,
        seq=s.next_seq(True),
        ack=(pd + ack_delta) & 0xFFFFFFFF,
        flags=g.TcpFlag.ACK,
        window=window,
    )
    frames += [probe, *s.send(False, b"t" * 500), s.ack(True), *s.send(True, b"u" * 100)]
    return [(100.0 + i * 0.001, frame) for i, frame in enumerate(frames)]


HALF = 1 << 31


@pytest.mark.parametrize("server_isn", [1_000_000, 0xFFFFF000, HALF - 2000])
@pytest.mark.parametrize(
    "ack_delta",
    [0, -1, 1, -(HALF - 1), -HALF, -(HALF + 1), HALF - 1, HALF, HALF + 1, -3000, -3001],
)
def test_ack_gap_test_at_its_edges(server_isn: int, ack_delta: int) -> None:
    """The ACK-gap test with its 32-bit wrap, at and beside each edge: C takes exactly the
    packets Python's fast branch takes (assert_same_conditions), and the records match."""
    frames = _ack_probe(server_isn, ack_delta)
    twin_runs(frames[:3], frames[3:], _untouched)
    fused, general = _general_too(frames)
    assert fused == general


def test_zero_window_takes_the_general_path() -> None:
    frames = _ack_probe(1_000_000, 0, window=0)
    recs, _ = twin_runs(frames[:3], frames[3:], _untouched)
    assert "W" in recs[0]["history"]
    fused, general = _general_too(frames)
    assert fused == general


def _general_too(frames: Frames) -> tuple[list[Any], list[Any]]:
    """(C loop, general path) records of the frames."""
    out: list[list[Any]] = []
    for fused in (True, False):
        recs: list[dict[str, Any]] = []
        pipe = Pipeline(Config.default(), recs.append, geo=NullGeo(), uids=UidSource(3))
        m = mapped(frames)
        if fused:
            run_core(pipe, m)
        else:
            pipe.run(m.rest(m.start))
        pipe.finish()
        out.append(recs)
    return out[0], out[1]


def test_payload_cut_by_the_snap_length_takes_the_general_path() -> None:
    """Segments whose payload the capture cut short (caplen < wirelen), once the parsers
    are done with the flow: not "whole", so the general path accounts for them (a hole),
    never the fast branch."""
    s = g.TcpSession(ROUTE, 40002, 8554)
    frames = [(frame, False) for frame in s.handshake()]
    for i in range(24):
        cut = i >= 12
        frames += [(frame, cut) for frame in s.send(True, b"c" * 1000)]
        frames += [(frame, cut) for frame in s.send(False, b"s" * 1000)]
    parts = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for i, (frame, cut) in enumerate(frames):
        data = frame[:80] if cut else frame
        parts.append(struct.pack("<IIII", 100, i * 1000, len(data), len(frame)) + data)
    snapped = b"".join(parts)
    out = []
    for fused in (True, False):
        recs: list[dict[str, Any]] = []
        pipe = Pipeline(Config.default(), recs.append, geo=NullGeo(), uids=UidSource(3))
        m = MappedPcap(snapped, 24, len(snapped), PcapHeader.parse(snapped[:24]), ReadStats())
        before = list(PYTHON_FAST)
        if fused:
            run_core(pipe, m)
            assert_same_conditions(before)
        else:
            pipe.run(m.rest(m.start))
        pipe.finish()
        out.append(recs)
    assert out[0] == out[1]
    assert out[0][0]["missed_bytes"] > 0


def test_flow_idle_timeout_exactly_at_a_packet() -> None:
    """A packet at exactly the time a timer is due is handed back (timers first): here the
    flow's idle timeout ends it and the packet starts a new one."""
    cfg = Config.default()
    cfg = replace(cfg, flows=replace(cfg.flows, udp_idle_s=0.5))
    frames = [(100.0 + i * 0.5, g.udp_frame(ROUTE, 5004, 5006, b"v" * 100)) for i in range(6)]
    out = []
    for fused in (True, False):
        recs: list[dict[str, Any]] = []
        pipe = Pipeline(cfg, recs.append, geo=NullGeo(), uids=UidSource(3))
        m = mapped(frames)
        if fused:
            run_core(pipe, m)
        else:
            pipe.run(m.rest(m.start))
        pipe.finish()
        out.append(recs)
    assert out[0] == out[1]
    assert len(out[0]) == 6


def test_sequence_numbers_wrap_in_the_fast_branch() -> None:
    """A client's data crosses 2**32 while C takes every segment: e.nxt/e.dack wrap as
    Python's do, and C keeps taking the segments after the wrap."""
    s = g.TcpSession(ROUTE, 40003, 8554, client_isn=0xFFFFFFFF - 25 * 1000)
    frames = [*s.handshake()]
    for _ in range(10):
        frames += s.send(True, b"c" * 1000)
    frames.append(s.ack(False))
    first = len(frames)
    for i in range(40):
        frames += s.send(True, b"c" * 1000)
        if i % 5 == 4:
            frames.append(s.ack(False))
    timed = [(100.0 + i * 0.001, frame) for i, frame in enumerate(frames)]
    recs, reasons = twin_runs(timed[:first], timed[first:], _untouched)
    assert sum(reasons) == reasons[FastStatus.END] == 1  # all of the second half in C
    assert recs[0]["orig_bytes"] == 50 * 1000


def test_counters_written_in_place_and_references_kept() -> None:
    """C writes the counters of a Flow and its Endpoints in place (C fields: no object per
    value) and leaves every reference count as it was: the flows (one each held by C's flow
    cache since the first run), their keys and their endpoints."""
    first, second = _split(traffic(100.0, 0.001, 40))
    pipe = Pipeline(Config.default(), lambda rec: None, geo=NullGeo(), uids=UidSource(3))
    run_core(pipe, mapped(first))
    for f in pipe.table.flows.values():
        for name in ("o_pkts", "o_ipb", "r_pkts", "r_ipb", "o_bytes", "r_bytes"):
            setattr(f, name, getattr(f, name) + 10**6)  # beyond the small-int cache
    for e in _endpoints(pipe):
        e.seqmax += 10**6
    kept = [obj for f in pipe.table.flows.values() for obj in (f, f.key, *(f.tcp or ()))]
    kept_counts = [sys.getrefcount(obj) for obj in kept]
    total = sum(f.o_pkts + f.r_pkts for f in pipe.table.flows.values())
    before = fast_loop().reasons()
    blocks = sys.getallocatedblocks()
    run_core(pipe, mapped(second))
    grown = sys.getallocatedblocks() - blocks
    reasons = [b - a for a, b in zip(before, fast_loop().reasons(), strict=True)]
    assert sum(reasons) == reasons[FastStatus.END] == 1  # all in C
    assert [sys.getrefcount(obj) for obj in kept] == kept_counts
    assert grown < len(second) // 4, grown  # nothing kept per packet
    assert sum(f.o_pkts + f.r_pkts for f in pipe.table.flows.values()) == total + len(second)


def test_memory_flat_over_repeated_runs() -> None:
    """Ten runs of the C loop over the same traffic leave the traced memory where the
    second left it: no key, record or value kept per packet."""
    frames = traffic(100.0, 0.001, 200)

    def one_run() -> None:
        pipe = Pipeline(Config.default(), lambda rec: None, geo=NullGeo(), uids=UidSource(3))
        run_core(pipe, mapped(frames))
        pipe.finish()

    tracemalloc.start()
    try:
        one_run()
        one_run()
        gc.collect()
        base = tracemalloc.get_traced_memory()[0]
        done = fast_loop().fast
        for _ in range(8):
            one_run()
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert fast_loop().fast - done > 8 * len(frames) * 9 // 10
    assert grown < 32 * 1024, grown  # a leaked int per packet would be ~250 KiB


def test_key_cache_with_more_flows_than_entries() -> None:
    """6,000 flows that differ only in an address share the 4,096 entries of C's key cache:
    every packet still reaches its own flow."""
    routes = [
        g.Route.of("bc:ad:28:00:00:01", f"10.1.{i >> 8}.{i & 255}", "00:11:22:33:44:55", "10.0.0.9")
        for i in range(6000)
    ]
    frames = [g.udp_frame(route, 5000, 6000, b"k" * (i % 50)) for i, route in enumerate(routes)]
    timed = [(100.0 + i * 0.0001, frame) for i, frame in enumerate(frames * 3)]
    hits = fast_loop().key_hits
    fused, general = _general_too(timed)
    assert fused == general
    assert len(fused) == 6000 and all(rec["orig_pkts"] == 3 for rec in fused)
    assert fast_loop().key_hits - hits > 1000


def test_captured_length_above_the_maximum_mid_capture() -> None:
    """C stops at a record whose captured length is above MAX_CAPLEN (the framing is lost)
    and the general walker takes it from there, as with the Python fused loop."""
    frames = traffic(100.0, 0.001, 10)
    data = pcap_bytes(frames)
    off = 24
    for _ in range(len(frames) // 2):  # the header of the record in the middle
        off += 16 + struct.unpack_from("<I", data, off + 8)[0]
    bad = data[:off] + struct.pack("<IIII", 100, 0, MAX_CAPLEN + 1, 60) + data[off + 16 :]
    out: list[list[Any]] = []
    before = fast_loop().reasons()
    for loop in (run_core, run_mapped):
        recs: list[dict[str, Any]] = []
        pipe = Pipeline(Config.default(), recs.append, geo=NullGeo(), uids=UidSource(3))
        m = MappedPcap(bad, 24, len(bad), PcapHeader.parse(bad[:24]), ReadStats())
        counted = loop(pipe, m)
        pipe.finish()
        out.append([recs, counted, m.stats.records, m.stats.caplen_exceeds, pipe.stats.packets])
    assert out[0] == out[1]
    assert out[0][3] == 1 and out[0][1][0] == len(frames) // 2
    assert fast_loop().reasons()[FastStatus.CAPLEN] == before[FastStatus.CAPLEN] + 1


@pytest.mark.parametrize(
    "make", [lambda: 7, lambda: "flow" * 2, lambda: None, lambda: [1], lambda: Endpoint("S")]
)
def test_anything_but_a_flow_in_the_table_is_handed_back(make: Callable[[], object]) -> None:
    """An object of another type under a packet's key: C reads none of its memory (smaller
    than a Flow: under ``./dev sanitize``, PYTHONMALLOC=malloc, ASan sees any read past it)
    and hands the packet back, with a key it built and with a key from its cache."""
    value = make()
    frames = [(100.0 + i, g.udp_frame(ROUTE, 5000, 6000, b"x" * 10)) for i in range(3)]
    data = pcap_bytes(frames)
    key = (ROUTE.src_ip, ROUTE.dst_ip, 5000, 6000, 17)
    flow = Flow(key, "C1", 99.0, 17)
    off = 24
    for table, want in (({key: value}, 0), ({key: flow}, 1), ({key: value}, 0)):
        hits = fast_loop().key_hits
        off, done, _, _, status, rec = fast_loop().run(
            table, data, off, len(data), True, 1e-6, float("inf"), 1
        )
        assert done == want
        assert (status, rec is None) == (
            (FastStatus.FULL, True) if want else (FastStatus.VALUE, False)
        )
    assert fast_loop().key_hits == hits + 1  # the last lookup was made with the cached key
    assert (flow.o_pkts, flow.last) == (1, 101.0)


# -- the flow cache, and the reference classes -------------------------------------------


def test_flow_cache_follows_a_flow_ended_and_started_again() -> None:
    """A cached flow is taken only while it is live: after an idle timeout (UDP) and after a
    connection reuse (TCP: closed, then a new SYN on the same 5-tuple) the packets reach the
    new flow, as on the general path."""
    udp = [g.udp_frame(ROUTE, 5000, 6000, b"u" * 20) for _ in range(6)]
    first = g.TcpSession(ROUTE, 40001, 80)
    second = g.TcpSession(ROUTE, 40001, 80, client_isn=7, server_isn=9)
    tcp = [*first.handshake(), *first.send(True, b"a" * 10), first.ack(False)]
    tcp += [*first.close(), *second.handshake(), *second.send(True, b"b" * 10)]
    tcp += [second.ack(False)] * 4
    frames = [(100.0 + i * 0.01, f) for i, f in enumerate(udp)]
    frames += [(200.0 + i * 0.01, f) for i, f in enumerate(udp + tcp)]
    hits = fast_loop().flow_hits
    fused, general = _general_too(frames)
    assert fused == general
    tcp_flows = sorted(r["orig_pkts"] + r["resp_pkts"] for r in fused if r["proto"] == "tcp")
    assert tcp_flows == [8, 8]  # the first and the second connection
    assert [r["orig_pkts"] for r in fused if r["proto"] == "udp"] == [6, 6]
    assert fast_loop().flow_hits - hits >= 10


def _reference_records(path: Path) -> list[Any]:
    """The pure fused loop, then the general path, with the flow table making pure-Python
    reference flows and endpoints (``PyFlow``, ``PyEndpoint``)."""
    out: list[Any] = []
    for fused in (True, False):
        recs: list[dict[str, Any]] = []
        pipe = Pipeline(Config.default(), recs.append, geo=NullGeo(), uids=UidSource(3))
        pipe.run_mapped = run_mapped
        cap = open_capture(path)
        if fused:
            pipe.run_capture(cap)
        else:
            pipe.run(cap.packets())
        made = {type(f) for f in pipe.table.flows.values()}
        assert made <= {PyFlow}
        assert {type(e) for f in pipe.table.flows.values() for e in f.tcp or ()} <= {PyEndpoint}
        pipe.finish()
        out.append([recs, pipe.stats.packets, pipe.decoder.failures])
    return out


def test_reference_classes_give_the_same_records(
    site_capture: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The C loop over the C-backed Flow and Endpoint and the pure loops over the reference
    classes give the same records, on generated site traffic and every capture of pcaps/."""
    paths = [site_capture, *sorted(p for p in (REPO / "pcaps").rglob("*.pcap") if p.is_file())]
    ours = [both_ways(path)[0] for path in paths]
    monkeypatch.setattr(flow_table, "Flow", PyFlow)
    monkeypatch.setattr(flow_table, "Endpoint", PyEndpoint)
    for path, want in zip(paths, ours, strict=True):
        assert _reference_records(path) == [want, want], path.name


def test_reference_classes_on_every_real_capture(
    pcap_corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = real_captures(pcap_corpus)
    ours = [both_ways(path)[0] for path in paths]
    monkeypatch.setattr(flow_table, "Flow", PyFlow)
    monkeypatch.setattr(flow_table, "Endpoint", PyEndpoint)
    for path, want in zip(paths, ours, strict=True):
        assert _reference_records(path) == [want, want], path.name


# -- a direction's first bare ACK taken in C (the third packet of a handshake...) ------------


def _table_state(pipe: Pipeline) -> str:
    """Every attribute of every flow and its endpoints, and the timer heaps, as text (repr:
    int and float told apart). An endpoint's ``deliv`` is read as tcpstate reads it (the
    fused loops move ``seqmax`` alone while ``nxt`` >= 0)."""
    table = pipe.table
    flows = []
    for f in sorted(table.flows.values(), key=lambda fl: fl.uid):
        _, attrs = core.slot_state(f, PyFlow.__slots__)
        if f.tcp is not None:
            attrs["tcp"] = ends = [core.slot_state(e, PyEndpoint.__slots__)[1] for e in f.tcp]
            for end in ends:  # while nxt >= 0, deliv is taken to equal seqmax (tcpstate)
                if end["nxt"] >= 0:
                    end["deliv"] = end["seqmax"]
        flows.append(sorted(attrs.items()))
    heaps = {
        "idle": {k: [(t, n, f.uid) for t, n, f in h] for k, h in table._heaps.items()},
        "closed": [(t, n, f.uid) for t, n, f in table._closed],
        "checks": [(t, n, f.uid, c) for t, n, f, c in table._checks],
        "attempts": [(t, n, f.uid, c) for t, n, f, c in table._attempts],
        "created": table.created,
    }
    # objects the deep parsers keep on a flow (a parser of its own) are told by their type
    return re.sub(r" object at 0x[0-9a-f]+>", " object>", repr((flows, heaps, table.next_sweep)))


def fin_ways(
    frames: Frames, tamper: Tamper = _untouched, split: int = 0, cfg: Config | None = None
) -> tuple[int, int]:
    """:func:`three_ways` after every frame from the ``split``-th on (the table compared
    after each); returns how many first FINs C applied over the whole frames, and how many
    of them completed a close (C pushed the removal timer)."""
    loop = fast_loop()
    fins = loop.first_fins
    for end in range(max(split, 1), len(frames) + 1):
        three_ways(frames[:end], tamper, split, cfg)
    before, closes = loop.first_fins, loop.closes
    three_ways(frames, tamper, split, cfg)
    assert fins <= before
    return loop.first_fins - before, loop.closes - closes


def syn_ack_ways(frames: Frames, tamper: Tamper = _untouched, split: int = 0) -> int:
    """:func:`three_ways` after every frame from the ``split``-th on; returns how many
    SYN-ACKs C applied over the whole frames."""
    for end in range(max(split, 1), len(frames) + 1):
        three_ways(frames[:end], tamper, split)
    before = fast_loop().syn_acks
    three_ways(frames, tamper, split)
    return fast_loop().syn_acks - before


def three_ways(
    frames: Frames, tamper: Tamper = _untouched, split: int = 0, cfg: Config | None = None
) -> tuple[int, list[int]]:
    """The frames through the C loop, the pure fused loop and the general path (``tamper``
    applied to the flow table after the first ``split`` frames, which all three run through
    the general path): the flow table (every attribute of every flow and endpoint, the
    timers) after the last frame and the records after the end must be equal. Returns how
    many first bare ACKs C applied, and the COND hand-backs by
    :class:`netwatch.core.CondReason`."""
    states, records = [], []
    acks, conds = 0, [0] * len(core.CondReason)
    for way in ("c", "python", "general"):
        recs: list[dict[str, Any]] = []
        pipe = Pipeline(cfg or Config.default(), recs.append, geo=NullGeo(), uids=UidSource(3))
        if split:
            head = mapped(frames[:split])
            pipe.run(head.rest(head.start))
            tamper(pipe)
        m = mapped(frames[split:])
        before, acks_before = fast_loop().conds(), fast_loop().first_acks
        python_before = list(PYTHON_FAST)
        if way == "c":
            run_core(pipe, m)
            assert_same_conditions(python_before)
            acks = fast_loop().first_acks - acks_before
            conds = [b - a for a, b in zip(before, fast_loop().conds(), strict=True)]
        elif way == "python":
            run_mapped(pipe, m)
        else:
            pipe.run(m.rest(m.start))
        states.append(_table_state(pipe))
        pipe.finish()
        records.append(recs)
    assert states[0] == states[2]
    assert states[1] == states[2]
    assert records[0] == records[2] and records[1] == records[2]
    return acks, conds


def _timed(frames: list[bytes], t0: float = 100.0) -> Frames:
    return [(t0 + i * 0.001, frame) for i, frame in enumerate(frames)]


def _seg(
    s: g.TcpSession,
    client: bool,
    *,
    seq: int,
    ack: int,
    flags: int = g.TcpFlag.ACK,
    payload: bytes = b"",
    window: int = 64240,
) -> bytes:
    route = s.route if client else s.route.reverse()
    sport, dport = (40010, 80) if client else (80, 40010)
    return g.tcp_frame(
        route,
        sport,
        dport,
        seq=seq & 0xFFFFFFFF,
        ack=ack & 0xFFFFFFFF,
        flags=flags,
        payload=payload,
        window=window,
    )


def test_third_ack_of_a_handshake_in_c() -> None:
    s = g.TcpSession(ROUTE, 40010, 80)
    frames = [*s.handshake(), *s.send(True, b"c" * 100), *s.send(False, b"s" * 100)]
    frames += [s.ack(True), s.ack(False), *s.close()]
    acks, conds = three_ways(_timed(frames))
    assert acks >= 2  # the client's third ACK ('A') and the server's first bare ACK ('a')
    assert conds[core.CondReason.FIRST_A] == 0


def test_first_ack_over_ipv6_and_isns_at_the_wrap() -> None:
    for route in (ROUTE, ROUTE6):
        for c_isn, s_isn in ((0xFFFFFFFF, 0xFFFFFFFE), (HALF - 1, HALF), (0, 0xFFFFFFFF)):
            s = g.TcpSession(route, 40010, 80, client_isn=c_isn, server_isn=s_isn)
            frames = [*s.handshake(), *s.send(False, b"s" * 3000), s.ack(True), s.ack(False)]
            acks, _ = three_ways(_timed(frames))
            assert acks >= 1


def test_retransmitted_syn_then_handshake() -> None:
    s = g.TcpSession(ROUTE, 40010, 80)
    syn = s.segment(True, g.TcpFlag.SYN)
    frames = [syn, syn, s.segment(False, g.TcpFlag.SYN | g.TcpFlag.ACK)]
    frames += [s.segment(False, g.TcpFlag.SYN | g.TcpFlag.ACK), s.ack(True), s.ack(True)]
    frames += [*s.send(True, b"x" * 10), s.ack(False)]
    acks, _ = three_ways(_timed(frames))
    assert acks >= 1


def test_simultaneous_open() -> None:
    s = g.TcpSession(ROUTE, 40010, 80)
    c_isn, s_isn = s.next_seq(True), s.next_seq(False)
    frames = [
        _seg(s, True, seq=c_isn, ack=0, flags=g.TcpFlag.SYN),
        _seg(s, False, seq=s_isn, ack=0, flags=g.TcpFlag.SYN),
        _seg(s, True, seq=c_isn, ack=s_isn + 1, flags=g.TcpFlag.SYN | g.TcpFlag.ACK),
        _seg(s, False, seq=s_isn, ack=c_isn + 1, flags=g.TcpFlag.SYN | g.TcpFlag.ACK),
        _seg(s, True, seq=c_isn + 1, ack=s_isn + 1),
        _seg(s, False, seq=s_isn + 1, ack=c_isn + 1),
        _seg(s, True, seq=c_isn + 1, ack=s_isn + 1, payload=b"q" * 20),
        _seg(s, False, seq=s_isn + 1, ack=c_isn + 21),
    ]
    three_ways(_timed(frames))


def test_syn_ack_before_its_syn_and_a_lone_syn_ack() -> None:
    s = g.TcpSession(ROUTE, 40010, 80)
    c_isn, s_isn = s.next_seq(True), s.next_seq(False)
    synack = _seg(s, False, seq=s_isn, ack=c_isn + 1, flags=g.TcpFlag.SYN | g.TcpFlag.ACK)
    syn = _seg(s, True, seq=c_isn, ack=0, flags=g.TcpFlag.SYN)
    third = _seg(s, True, seq=c_isn + 1, ack=s_isn + 1)
    back = _seg(s, False, seq=s_isn + 1, ack=c_isn + 1)
    three_ways(_timed([synack, syn, third, back, third]))  # reversed: Zeek flips at the SYN
    _, conds = three_ways(_timed([synack, third, back, third]))  # lone SYN-ACK: flipped
    # the ACK after it is Python's (the flip): its sender never spoke (nxt -1)
    assert conds[core.CondReason.NO_NXT] >= 1


@pytest.mark.parametrize("delta", [-HALF - 1, -HALF, -5, -1, 0, 1, 5, HALF - 1, HALF, HALF + 1])
def test_third_ack_acknowledging_more_or_less_than_was_seen(delta: int) -> None:
    """An ACK beyond the peer's delivered data is a content gap (Python's); at or behind it
    C applies the letter."""
    s = g.TcpSession(ROUTE, 40010, 80)
    frames = [*s.handshake()[:2]]
    c, sv = s.next_seq(True), s.next_seq(False)
    frames += [_seg(s, True, seq=c, ack=sv + delta), *s.send(False, b"s" * 50), s.ack(True)]
    acks, conds = three_ways(_timed(frames))
    gap = 0 < delta % (1 << 32) < HALF
    handed = conds[core.CondReason.ACK] + conds[core.CondReason.FIRST_A]
    assert (handed >= 1) == gap
    assert (acks >= 1) == (not gap)


def test_mid_stream_flow_and_first_acks_of_an_inactive_side() -> None:
    """No handshake: the side that never sent wakes up in Python (_wake); the next first
    ACKs may be C's."""
    s = g.TcpSession(ROUTE, 40010, 80)
    c, sv = s.next_seq(True), s.next_seq(False)
    frames = [
        _seg(s, True, seq=c, ack=sv, payload=b"a" * 100),
        _seg(s, False, seq=sv, ack=c + 100),
        _seg(s, True, seq=c + 100, ack=sv),
        _seg(s, False, seq=sv, ack=c + 100, payload=b"b" * 10),
        _seg(s, True, seq=c + 100, ack=sv + 10),
    ]
    three_ways(_timed(frames))


def test_first_ack_after_a_fin_before_the_data_was_acked_and_after_rst() -> None:
    s = g.TcpSession(ROUTE, 40010, 80)
    c_isn, s_isn = s.next_seq(True), s.next_seq(False)
    frames = [s.segment(True, g.TcpFlag.SYN), s.segment(False, g.TcpFlag.SYN | g.TcpFlag.ACK)]
    frames += [*s.send(True, b"d" * 200), s.segment(True, g.TcpFlag.FIN | g.TcpFlag.ACK)]
    frames += [_seg(s, False, seq=s_isn + 1, ack=c_isn + 1 + 200)]  # the data, not the FIN
    frames += [_seg(s, False, seq=s_isn + 1, ack=c_isn + 1 + 201), s.ack(True)]
    acks, _ = three_ways(_timed(frames))
    assert acks >= 1
    r = g.TcpSession(ROUTE, 40010, 80)
    frames = [*r.handshake()[:2], r.reset(True), r.ack(False), r.ack(True)]
    three_ways(_timed(frames))


def test_first_ack_with_a_zero_window_and_a_cut_payload_stay_python() -> None:
    s = g.TcpSession(ROUTE, 40010, 80)
    frames = [*s.handshake()[:2]]
    c, sv = s.next_seq(True), s.next_seq(False)
    frames += [_seg(s, True, seq=c, ack=sv, window=0), _seg(s, True, seq=c, ack=sv)]
    _, conds = three_ways(_timed(frames))
    assert conds[core.CondReason.ZERO_WIN] == 1


def _random_session(seed: int) -> Frames:
    """Segments of two connections with random sides, flags, sequence and acknowledgement
    numbers near the expected ones: handshakes, data, bare ACKs, gaps, retransmissions,
    FINs, RSTs, SYNs again."""
    rnd = random.Random(seed)
    frames: list[bytes] = []
    for port in (40010, 40011):
        s = g.TcpSession(
            ROUTE, port, 80, client_isn=rnd.getrandbits(32), server_isn=rnd.getrandbits(32)
        )
        if rnd.random() < 0.8:
            frames.append(s.segment(True, g.TcpFlag.SYN))
        if rnd.random() < 0.8:
            frames.append(s.segment(False, g.TcpFlag.SYN | g.TcpFlag.ACK))
        for _ in range(rnd.randrange(3, 25)):
            side = rnd.random() < 0.5
            kind = rnd.choice("aaaaddjkofrsz")
            if kind == "a":
                frames.append(s.ack(side))
            elif kind == "d":
                frames += s.send(side, b"p" * rnd.choice((1, 10, 1400, 3000)))
            else:
                seq, ack = s.next_seq(side), s.next_seq(not side)
                flags = {
                    "f": g.TcpFlag.FIN | g.TcpFlag.ACK,
                    "r": g.TcpFlag.RST,
                    "s": g.TcpFlag.SYN,
                }.get(kind, g.TcpFlag.ACK)
                seq += {"j": rnd.choice((-100, 100, HALF)), "k": 0}.get(kind, 0)
                ack += {"k": rnd.choice((-1, 1, 500, -HALF)), "o": -rnd.randrange(1, 9)}.get(
                    kind, 0
                )
                route = s.route if side else s.route.reverse()
                sp, dp = (port, 80) if side else (80, port)
                frames.append(
                    g.tcp_frame(
                        route,
                        sp,
                        dp,
                        seq=seq & 0xFFFFFFFF,
                        ack=ack & 0xFFFFFFFF,
                        flags=flags,
                        window=0 if kind == "z" else 512,
                    )
                )
                if kind == "f":
                    s.advance(side, 1, 1)
    return _timed(frames)


@pytest.mark.parametrize("seed", range(60))
def test_random_segments_same_state_three_ways(seed: int) -> None:
    three_ways(_random_session(seed))


def test_random_segments_hit_first_acks() -> None:
    acks = sum(three_ways(_random_session(seed))[0] for seed in range(20))
    assert acks >= 10


def _stale_peer(pipe: Pipeline) -> None:
    """The server's endpoint with a delivered position C does not read (beyond 2**61)."""
    (f,) = _flows(pipe, 6)
    assert f.tcp is not None
    server = f.tcp[1]
    server.nxt = -1
    server.deliv = (1 << 70) + server.deliv


def test_first_ack_hands_back_a_value_it_does_not_read() -> None:
    s = g.TcpSession(ROUTE, 40010, 80)
    frames = [*s.handshake(), *s.send(False, b"s" * 10), s.ack(True)]
    _, reasons = twin_runs(_timed(frames[:2]), _timed(frames[2:], 100.01), _stale_peer)
    assert reasons[FastStatus.VALUE] >= 1


def _set_end(side: int, **values: int | str) -> Tamper:
    def tamper(pipe: Pipeline) -> None:
        (f,) = _flows(pipe, 6)
        assert f.tcp is not None
        e = f.tcp[side]
        for name, value in values.items():
            setattr(e, name, value)

    return tamper


def _lone_syn_ack(pipe: Pipeline) -> None:
    """The states after an originator's lone SYN-ACK (the next ACK flips the flow)."""
    (f,) = _flows(pipe, 6)
    assert f.tcp is not None
    f.tcp[0].state, f.tcp[1].state = 2, 0


def _seqmax_behind(pipe: Pipeline) -> None:
    """The client's seqmax 10 below where its next segment starts (nxt unchanged)."""
    (f,) = _flows(pipe, 6)
    assert f.tcp is not None
    f.tcp[0].seqmax -= 10


#: Endpoint states both first-letter branches (first ACK, first payload) are tested after.
_UNUSUAL_ENDPOINTS: list[tuple[Tamper, int]] = [
    (_set_end(1, dack=-1), 0),  # the peer's dack rewritten from its deliv
    (_set_end(1, dack=-1), 5),  # beyond the peer's data: _ack_received's
    (_set_end(0, dack=-1), 0),  # the sender's dack rewritten
    (_set_end(1, nxt=-1), 0),  # the peer's nxt recomputed
    (_set_end(0, state=0), 0),  # an inactive sender wakes up
    (_set_end(0, base=-1), 0),  # an endpoint without a first byte: _control
    (_set_end(0, state=2), 0),
    (_lone_syn_ack, 0),  # the originator's lone SYN-ACK: flipped
    (_set_end(0, state=5), 0),  # closed: still nxt
    (_set_end(0, state=6), 0),  # reset: nxt -1
    (_set_end(1, state=6), 0),
]


@pytest.mark.parametrize(
    ("tamper", "delta"),
    [
        *_UNUSUAL_ENDPOINTS,
        (_seqmax_behind, 0),  # an empty segment beyond the highest seen
    ],
)
def test_first_ack_after_unusual_endpoint_states(tamper: Tamper, delta: int) -> None:
    """The endpoints made to hold what the fast branch's own tests let through but C's
    first-ACK branch must recompute or leave to Python: the flow table equals the general
    path's either way."""
    s = g.TcpSession(ROUTE, 40010, 80)
    frames = [*s.handshake()[:2]]
    c, sv = s.next_seq(True), s.next_seq(False)
    frames.append(_seg(s, True, seq=c, ack=sv + delta))
    three_ways(_timed(frames), tamper, 2)  # the table just after that ACK
    frames += [*s.send(False, b"s" * 50), s.ack(True)]
    three_ways(_timed(frames), tamper, 2)


def test_first_ack_after_the_peer_sent_data_in_the_fast_branch() -> None:
    """The peer's deliv is stale (its data went through the fast branch): C reads its
    seqmax, as tcp_packet does, and applies the ACK."""
    s = g.TcpSession(ROUTE, 40010, 80)
    frames = [*s.handshake()[:2], *s.send(True, b"q" * 10)]
    for _ in range(12):  # beyond the deep parsers' 8 packets
        frames += s.send(False, b"s" * 100)
    frames.append(s.ack(True))
    acks, _ = three_ways(_timed(frames))
    assert acks == 1


# -- an endpoint's first FIN taken in C (no timer due) ---------------------------------------


def test_first_fin_of_a_close_in_c() -> None:
    s = g.TcpSession(ROUTE, 40010, 80)
    frames = [*s.handshake(), *s.send(True, b"c" * 100), *s.send(False, b"s" * 100)]
    frames += [s.ack(True), *s.close(), s.ack(False)]
    assert fin_ways(_timed(frames)) == (2, 1)  # the second FIN closes: the timer pushed
    s = g.TcpSession(ROUTE6, 40010, 80, client_isn=0xFFFFFFFF, server_isn=HALF - 1)
    frames = [*s.handshake(), *s.send(False, b"s" * 10), *s.close(False)]
    assert fin_ways(_timed(frames)) == (2, 1)


def test_half_close_then_data_then_the_other_fin() -> None:
    s = g.TcpSession(ROUTE, 40010, 80)
    frames = [*s.handshake(), *s.send(True, b"c" * 10), s.ack(False)]
    frames += [s.segment(True, g.TcpFlag.FIN | g.TcpFlag.ACK), s.ack(False)]
    frames += [*s.send(False, b"s" * 3000), s.ack(True), s.ack(True)]
    frames += [s.segment(False, g.TcpFlag.FIN | g.TcpFlag.ACK), s.ack(True)]
    assert fin_ways(_timed(frames)) == (2, 1)


def test_fin_variants_left_to_python() -> None:
    """A FIN with data, without ACK, retransmitted, beyond the data seen, acknowledging
    beyond the peer's data, with a zero window, with RST: the tables stay equal."""
    fa = g.TcpFlag.FIN | g.TcpFlag.ACK
    for variant in range(8):
        s = g.TcpSession(ROUTE, 40010, 80)
        frames = [*s.handshake(), *s.send(True, b"c" * 10), s.ack(False)]
        c, sv = s.next_seq(True), s.next_seq(False)
        fin = [
            _seg(s, True, seq=c, ack=sv, flags=fa, payload=b"last"),
            _seg(s, True, seq=c, ack=0, flags=g.TcpFlag.FIN),
            _seg(s, True, seq=c, ack=sv, flags=fa),
            _seg(s, True, seq=c + 100, ack=sv, flags=fa),
            _seg(s, True, seq=c, ack=sv + 7, flags=fa),
            _seg(s, True, seq=c, ack=sv, flags=fa, window=0),
            _seg(s, True, seq=c, ack=sv, flags=fa | g.TcpFlag.RST),
            _seg(s, True, seq=c, ack=sv - 3, flags=fa),
        ][variant]
        frames += [fin, fin, _seg(s, False, seq=sv, ack=c + 1), s.ack(True)]
        fin_ways(_timed(frames))


def _hole(pipe: Pipeline) -> None:
    """The client's endpoint with undelivered data (nxt -1, deliv 5 below seqmax)."""
    (f,) = _flows(pipe, 6)
    assert f.tcp is not None
    e = f.tcp[0]
    e.nxt, e.deliv = -1, e.seqmax - 5


def _last_ctl(value: list[int]) -> Tamper:
    def tamper(pipe: Pipeline) -> None:
        (f,) = _flows(pipe, 6)
        assert f.tcp is not None
        f.tcp[0].last_ctl = list(value)  # a list of its own (tcpstate changes it in place)

    return tamper


@pytest.mark.parametrize(
    "tamper",
    [
        _untouched,
        _last_ctl([-1, 5, -1]),  # an earlier F at another sequence number: F again
        _last_ctl([-1, -1, -1]),
        _set_end(0, fin=7),  # a FIN already sent
        _set_end(0, state=3),  # partial
        _set_end(1, state=3),
        _set_end(1, state=6),  # the peer reset: a timer
        _set_end(1, state=5),  # the peer closed: closes the connection, a timer
        _set_end(0, base=-1),
        _set_end(1, dack=-1),
        _set_end(1, nxt=-1),
        _seqmax_behind,  # the FIN beyond the highest sequence number seen
        _hole,
    ],
)
@pytest.mark.parametrize(("flags", "ack_delta"), [(0x11, 0), (0x11, 7), (0x01, 7)])
def test_first_fin_after_unusual_endpoint_states(
    tamper: Tamper, flags: int, ack_delta: int
) -> None:
    """The FIN (with or without ACK, acknowledging the peer's data or beyond it) after the
    endpoints were made to hold what the fast branch's tests let through: the table equals
    the general path's after every packet."""
    s = g.TcpSession(ROUTE, 40010, 80)
    frames = [*s.handshake(), *s.send(False, b"s" * 10), s.ack(True)]
    c, sv = s.next_seq(True), s.next_seq(False)
    frames += [
        _seg(s, True, seq=c, ack=sv + ack_delta, flags=flags),
        _seg(s, False, seq=sv, ack=c + 1),
    ]
    s.advance(True, 1, 1)
    frames += [*s.send(False, b"t" * 10), s.ack(True), *s.close(False)]
    fins = fin_ways(_timed(frames), tamper, 5)
    if tamper is _untouched:  # a gap acked: Python's; the server's FIN closes, in C
        assert fins == (1 if flags & 0x10 and ack_delta else 2, 1)


def test_random_segments_hit_first_fins() -> None:
    fins, resets = fast_loop().first_fins, fast_loop().resets
    for seed in range(20):
        three_ways(_random_session(seed))
    assert fast_loop().first_fins - fins >= 5
    assert fast_loop().resets - resets >= 3


# -- the SYN-ACK answering a SYN, and the FIN that completes a close, taken in C -------------

SA = g.TcpFlag.SYN | g.TcpFlag.ACK


def test_syn_ack_of_a_handshake_in_c() -> None:
    """The responder's SYN-ACK (IPv4 and IPv6; ISNs where seq + 1 wraps or crosses 2**31):
    C applies it, the table equal to the general path's after every packet."""
    for route in (ROUTE, ROUTE6):
        for c_isn, s_isn in ((1000, 0xFFFFFFFF), (HALF - 1, HALF - 1), (0xFFFFFFFF, 0)):
            s = g.TcpSession(route, 40010, 80, client_isn=c_isn, server_isn=s_isn)
            frames = [*s.handshake(), *s.send(True, b"c" * 10), *s.send(False, b"s" * 10)]
            frames.append(s.ack(True))
            assert syn_ack_ways(_timed(frames)) == 1
            _, conds = three_ways(_timed(frames))
            assert conds[core.CondReason.SYN] == 0


@pytest.mark.parametrize(
    ("variant", "in_c"),
    [
        ("plain", 1),
        ("payload", 0),  # data on the SYN-ACK: the deep parsers and _deliver
        ("zero window", 0),
        ("acks beyond the syn", 0),  # _ack_received (a gap)
        ("acks behind the syn", 1),
        ("acks far behind", 1),
        ("ack number zero", 1),
        ("ece cwr psh", 1),  # other flags change nothing
        ("retransmitted", 1),  # the second one: the responder is established, Python's
        ("retransmitted other seq", 1),  # and its h again
        ("from the client", 0),  # the originator's SYN-ACK (SYN_ACK_SENT)
        ("with fin", 0),
        ("with rst", 0),
        ("no ack flag", 0),  # a SYN back: simultaneous open, Python's
    ],
)
def test_syn_ack_variants(variant: str, in_c: int) -> None:
    s = g.TcpSession(ROUTE, 40010, 80)
    c, sv = s.next_seq(True), s.next_seq(False)
    flags, seq, ack, side, payload, window = SA, sv, c + 1, False, b"", 512
    if variant == "payload":
        payload = b"early"
    elif variant == "zero window":
        window = 0
    elif variant == "acks beyond the syn":
        ack = c + 6
    elif variant == "acks behind the syn":
        ack = c - 5
    elif variant == "acks far behind":
        ack = c + 1 + HALF
    elif variant == "ack number zero":
        ack = 0
    elif variant == "ece cwr psh":
        flags = SA | 0x40 | 0x80 | 0x08
    elif variant == "from the client":
        side, seq, ack = True, c, sv + 1
    elif variant == "with fin":
        flags = SA | g.TcpFlag.FIN
    elif variant == "with rst":
        flags = SA | g.TcpFlag.RST
    elif variant == "no ack flag":
        flags = g.TcpFlag.SYN
    syn = _seg(s, True, seq=c, ack=0, flags=g.TcpFlag.SYN)
    answer = _seg(s, side, seq=seq, ack=ack, flags=flags, payload=payload, window=window)
    frames = [syn, answer]
    if variant.startswith("retransmitted"):
        frames.append(
            _seg(s, False, seq=sv + (7 if "other" in variant else 0), ack=c + 1, flags=SA)
        )
    frames += [_seg(s, True, seq=c + 1, ack=sv + 1), _seg(s, False, seq=sv + 1, ack=c + 1)]
    frames.append(_seg(s, True, seq=c + 1, ack=sv + 1, payload=b"q" * 20))
    assert syn_ack_ways(_timed(frames)) == in_c


def _set_last_ctl(side: int, value: list[int]) -> Tamper:
    def tamper(pipe: Pipeline) -> None:
        (f,) = _flows(pipe, 6)
        assert f.tcp is not None
        f.tcp[side].last_ctl = list(value)  # its own (tcpstate changes it in place)

    return tamper


def _swap_letters(pipe: Pipeline) -> None:
    """The responder's endpoint with the originator's letters (tcpstate tells the two apart
    by them)."""
    (f,) = _flows(pipe, 6)
    assert f.tcp is not None
    f.tcp[1].letters = f.tcp[0].letters


def _orig_nxt_set(pipe: Pipeline) -> None:
    """The originator's nxt set (its deliv then taken from seqmax), its deliv stale."""
    (f,) = _flows(pipe, 6)
    assert f.tcp is not None
    o = f.tcp[0]
    o.nxt, o.deliv = o.seqmax & 0xFFFFFFFF, -1


@pytest.mark.parametrize(
    ("tamper", "in_c"),
    [
        (_untouched, 1),
        (_set_end(0, state=0), 0),  # the originator inactive: is_reuse looks at the responder
        (_set_end(0, state=2), 0),
        (_set_end(0, state=3), 0),
        (_set_end(0, state=4), 0),
        (_set_end(0, state=5), 0),  # closed: a reuse, a new flow
        (_set_end(1, state=2), 0),
        (_set_end(1, state=4), 0),
        (_set_end(1, base=7), 0),
        (_set_end(1, bits=2), 1),  # 'h' already there: no letter
        (_set_end(1, bits=1), 1),
        (_set_end(1, nxt=5), 1),  # its deliv reset by the prologue, then _start
        (_set_end(0, deliv=-1), 1),  # the originator's data unknown: no acknowledgement
        (_set_end(0, dack=-1), 1),
        (_set_end(0, seqmax=5), 1),  # so its nxt stays -1
        (_orig_nxt_set, 1),
        (_set_last_ctl(1, [-1, -1, -1]), 0),
        (_set_last_ctl(1, [5, -1, -1]), 0),
        (_swap_letters, 0),
        (_set_end(1, prev=3), 1),  # prev becomes INACTIVE as the state changes
    ],
)
def test_syn_ack_after_unusual_endpoint_states(tamper: Tamper, in_c: int) -> None:
    s = g.TcpSession(ROUTE, 40010, 80)
    frames = [*s.handshake(), *s.send(True, b"c" * 10), *s.send(False, b"s" * 10)]
    assert syn_ack_ways(_timed(frames), tamper, 1) == in_c


def _roles_swapped(pipe: Pipeline) -> None:
    """The originator's endpoint inactive with the responder's letters, the responder's
    SYN_SENT with a first byte: a SYN-ACK from the originator's side then looks like an
    answer to tcpstate, but FlowTable.packet's is_reuse looks at the originator (inactive)
    and the responder's first byte, and starts a new connection."""
    (f,) = _flows(pipe, 6)
    assert f.tcp is not None
    o, r = f.tcp
    o.state, o.base, o.last_ctl, o.bits, o.letters = 0, -1, None, 0, r.letters
    r.state, r.base = 1, 5


def test_syn_ack_from_the_originators_side_is_pythons() -> None:
    s = g.TcpSession(ROUTE, 40010, 80)
    c, sv = s.next_seq(True), s.next_seq(False)
    frames = [
        _seg(s, True, seq=c, ack=0, flags=g.TcpFlag.SYN),
        _seg(s, True, seq=c + 100, ack=sv + 1, flags=SA),
        _seg(s, False, seq=sv + 1, ack=c + 101),
    ]
    assert syn_ack_ways(_timed(frames), _roles_swapped, 1) == 0


def test_syn_ack_values_it_does_not_read_are_handed_back() -> None:
    s = g.TcpSession(ROUTE, 40010, 80)
    frames = [*s.handshake(), *s.send(True, b"c" * 10)]

    def big_base(pipe: Pipeline) -> None:
        (f,) = _flows(pipe, 6)
        assert f.tcp is not None
        f.tcp[1].base = -(1 << 62)

    _, reasons = twin_runs(_timed(frames[:1]), _timed(frames[1:], 100.01), big_base)
    assert reasons[FastStatus.VALUE] >= 1


def _closed_soon(cfg: Config) -> Config:
    return replace(cfg, flows=replace(cfg.flows, tcp_closed_s=0.0025))


def test_close_in_c_moves_the_next_sweep() -> None:
    """A close delay shorter than the sweep interval: the removal C pushes makes the next
    sweep earlier, and C hands the first packet at or past it back (SWEEP), so the closed
    flow ends at the same packet as in Python (the table compared after every packet)."""
    s = g.TcpSession(ROUTE, 40010, 80)
    other = g.TcpSession(ROUTE, 40011, 554)
    frames = [*other.handshake(), *other.send(True, b"o" * 10), *other.send(False, b"p" * 10)]
    frames += [*s.handshake(), *s.send(False, b"s" * 10), s.ack(True), *s.close()]
    frames += [other.ack(True) for _ in range(3)] + [other.ack(False) for _ in range(3)]
    frames += [*other.send(True, b"o" * 10), *other.send(False, b"p" * 10)]
    assert fin_ways(_timed(frames), cfg=_closed_soon(Config.default())) == (2, 1)


def test_closing_fin_earlier_than_the_last_packet() -> None:
    """Packet time going back at the close: the clock stops at Flow.last (the later time),
    the removal is scheduled at the FIN's own time."""
    s = g.TcpSession(ROUTE, 40010, 80)
    frames = [*s.handshake(), *s.send(True, b"c" * 10), *s.send(False, b"s" * 10), s.ack(True)]
    timed = _timed([*frames, *s.close()])
    fin_ts = timed[-2][0]
    timed[-3] = (fin_ts + 0.5, timed[-3][1])  # the first FIN half a second later
    assert fin_ways(timed) == (2, 1)


def _flow_value(**values: object) -> Tamper:
    def tamper(pipe: Pipeline) -> None:
        (f,) = _flows(pipe, 6)
        for name, value in values.items():
            setattr(f, name, value)

    return tamper


@pytest.mark.parametrize(
    ("tamper", "closes"),
    [
        (_untouched, 1),
        (_flow_value(stop=50.0), 1),  # the clock stopped before: kept
        (_flow_value(stop=-1), 0),  # an int: C does not read it
        (_flow_value(state=1), 0),  # closed already: _closing does nothing more, Python's
        (_set_end(1, prev=0), 1),  # the peer's state before its FIN: no partial-close check
        (_set_end(1, state=6, nxt=-1), 0),  # the peer reset (nxt as tcp_packet leaves it)
    ],
)
def test_closing_fin_after_unusual_flow_states(tamper: Tamper, closes: int) -> None:
    s = g.TcpSession(ROUTE, 40010, 80)
    frames = [*s.handshake(), *s.send(True, b"c" * 10), *s.send(False, b"s" * 10)]
    frames += [s.ack(True), s.segment(False, g.TcpFlag.FIN | g.TcpFlag.ACK)]
    frames += [s.ack(True), s.segment(True, g.TcpFlag.FIN | g.TcpFlag.ACK), s.ack(False)]
    split = len(frames) - 3  # after the server's FIN
    assert fin_ways(_timed(frames), tamper, split)[1] == closes


def test_closing_fin_without_the_push_is_handed_back() -> None:
    """FastLoop.run without closed (None or not given): the FIN that completes a close is
    Python's (COND, FIN); with it, C applies the FIN and calls it once."""
    s = g.TcpSession(ROUTE, 40010, 80)
    frames = [*s.handshake(), *s.send(True, b"c" * 10), s.ack(False), *s.close()]
    for push in (None, False, True):
        pipe = Pipeline(Config.default(), print, geo=NullGeo(), uids=UidSource(3))
        head = mapped(_timed(frames[:-2]))
        pipe.run(head.rest(head.start))
        table = pipe.table
        calls: list[float] = []

        def closed_at(
            f: Flow, ts: float, calls: list[float] = calls, table: FlowTable = table
        ) -> float:
            calls.append(ts)
            return table.closed_at(f, ts)

        data = pcap_bytes(_timed(frames[-2:], 100.5))  # before the next sweep
        conds = fast_loop().conds()[core.CondReason.FIN]
        run = partial(fast_loop().run, table.flows, data, 24, len(data), True, 1e-6)
        if push is None:
            _, done, _, _, status, rec = run(table.next_sweep, 10)
        else:
            _, done, _, _, status, rec = run(table.next_sweep, 10, closed_at if push else None)
        assert (done, status, rec is None) == (
            (2, FastStatus.END, True) if push else (0, FastStatus.COND, False)
        )
        assert fast_loop().conds()[core.CondReason.FIN] - conds == (0 if push else 1)
        assert calls == ([100.5] if push else [])
    with pytest.raises(TypeError):
        fast_loop().run({}, b"", 0, 0, True, 1e-6, 0.0, 1, 5)  # type: ignore[arg-type]


def test_a_failing_push_stops_the_run() -> None:
    s = g.TcpSession(ROUTE, 40010, 80)
    frames = [*s.handshake(), *s.send(True, b"c" * 10), s.ack(False), *s.close()]
    pipe = Pipeline(Config.default(), print, geo=NullGeo(), uids=UidSource(3))
    head = mapped(_timed(frames[:-2]))
    pipe.run(head.rest(head.start))

    def closed_at(f: Flow, ts: float) -> float:
        raise RuntimeError("push")

    data = pcap_bytes(_timed(frames[-2:], 101.0))
    with pytest.raises(RuntimeError, match="push"):
        fast_loop().run(pipe.table.flows, data, 24, len(data), True, 1e-6, 1e9, 10, closed_at)


def _random_handshake(seed: int) -> Frames:
    """A handshake with random ISNs, a SYN-ACK with random extra flags, acknowledgement and
    retransmission, then data, and a close by either side first, or a RST."""
    rnd = random.Random(seed)
    s = g.TcpSession(
        ROUTE, 40010, 80, client_isn=rnd.getrandbits(32), server_isn=rnd.getrandbits(32)
    )
    c, sv = s.next_seq(True), s.next_seq(False)
    ack = c + 1 + rnd.choice((0, 0, 0, -1, 1, 5, -HALF, HALF - 1, HALF))
    extra = rnd.choice((0, 0, 0x08, 0x40, 0xC0, g.TcpFlag.FIN, g.TcpFlag.RST))
    frames = [_seg(s, True, seq=c, ack=0, flags=g.TcpFlag.SYN)]
    for _ in range(rnd.choice((1, 1, 2))):
        frames.append(
            _seg(s, False, seq=sv, ack=ack, flags=SA | extra, window=rnd.choice((512, 512, 0)))
        )
    s.advance(True, 1, 0)
    s.advance(False, 1, 0)
    frames.append(s.ack(True))
    frames += [*s.send(True, b"c" * rnd.choice((1, 10))), *s.send(False, b"s" * 10)]
    first = rnd.random() < 0.5
    ending = rnd.choice("ffr")
    if ending == "r":
        frames.append(s.segment(first, g.TcpFlag.RST))
    else:
        frames += [s.ack(True), *s.close(first), s.ack(not first)]
    return _timed(frames)


@pytest.mark.parametrize("seed", range(40))
def test_random_handshakes_and_closes_same_state(seed: int) -> None:
    syn_ack_ways(_random_handshake(seed))


def test_random_handshakes_hit_syn_acks_and_closes() -> None:
    loop = fast_loop()
    syn_acks, closes, resets = loop.syn_acks, loop.closes, loop.resets
    for seed in range(40):
        three_ways(_random_handshake(seed))
    assert loop.syn_acks - syn_acks >= 5
    assert loop.closes - closes >= 5
    assert loop.resets - resets >= 3


# -- a RST taken in C -----------------------------------------------------------------------


def rst_ways(frames: Frames, tamper: Tamper = _untouched, split: int = 0) -> int:
    """:func:`three_ways` after every frame from the ``split``-th on; returns how many RSTs
    C applied over the whole frames."""
    for end in range(max(split, 1), len(frames) + 1):
        three_ways(frames[:end], tamper, split)
    before = fast_loop().resets
    three_ways(frames, tamper, split)
    return fast_loop().resets - before


@pytest.mark.parametrize(
    ("variant", "in_c"),
    [
        ("client rst", 1),
        ("rst without ack flag acking beyond", 1),  # the ack field is not read then
        ("server rst ack", 1),
        ("rst ack behind", 1),
        ("rst ack beyond", 0),  # _ack_received
        ("rst other seq", 1),  # a RST's seq is no data
        ("rst zero window", 1),
        ("rst with payload", 0),  # the deep parsers'
        ("rst after the peer's fin", 1),  # the clock stops
        ("rst after its own fin", 0),
        ("rst twice", 1),  # the second: the sender reset already, Python's
        ("rst fin", 0),
        ("rst syn", 0),
        ("rst after data in c", 1),  # deliv behind seqmax (nxt >= 0) on both ends
    ],
)
def test_rst_variants(variant: str, in_c: int) -> None:
    s = g.TcpSession(ROUTE, 40010, 80)
    frames = [*s.handshake(), *s.send(True, b"c" * 10), *s.send(False, b"s" * 10)]
    if variant == "rst after data in c":  # beyond the deep parsers' 8 packets each way
        for _ in range(10):
            frames += [*s.send(True, b"c" * 100), *s.send(False, b"s" * 100)]
    c, sv = s.next_seq(True), s.next_seq(False)
    rst, ra, fa = g.TcpFlag.RST, g.TcpFlag.RST | g.TcpFlag.ACK, g.TcpFlag.FIN | g.TcpFlag.ACK
    tail = {
        "client rst": [_seg(s, True, seq=c, ack=0, flags=rst)],
        "rst without ack flag acking beyond": [_seg(s, False, seq=sv, ack=c + 4, flags=rst)],
        "server rst ack": [_seg(s, False, seq=sv, ack=c, flags=ra)],
        "rst ack behind": [_seg(s, False, seq=sv, ack=c - 4, flags=ra)],
        "rst ack beyond": [_seg(s, False, seq=sv, ack=c + 4, flags=ra)],
        "rst other seq": [_seg(s, True, seq=c + 1000, ack=sv, flags=ra)],
        "rst zero window": [_seg(s, True, seq=c, ack=sv, flags=ra, window=0)],
        "rst with payload": [_seg(s, True, seq=c, ack=sv, flags=ra, payload=b"bye")],
        "rst after the peer's fin": [
            _seg(s, False, seq=sv, ack=c, flags=fa),
            _seg(s, True, seq=c, ack=sv + 1, flags=ra),
        ],
        "rst after its own fin": [
            _seg(s, True, seq=c, ack=sv, flags=fa),
            _seg(s, True, seq=c + 1, ack=sv, flags=ra),
        ],
        "rst twice": [
            _seg(s, True, seq=c, ack=sv, flags=ra),
            _seg(s, True, seq=c + 5, ack=sv, flags=ra),
        ],
        "rst fin": [_seg(s, True, seq=c, ack=sv, flags=ra | g.TcpFlag.FIN)],
        "rst syn": [_seg(s, True, seq=c, ack=sv, flags=ra | g.TcpFlag.SYN)],
        "rst after data in c": [_seg(s, True, seq=c, ack=sv, flags=ra)],
    }[variant]
    frames += [*tail, _seg(s, False, seq=sv, ack=c), _seg(s, True, seq=c, ack=sv)]
    assert rst_ways(_timed(frames)) == in_c


@pytest.mark.parametrize(
    ("tamper", "in_c"),
    [
        (_untouched, 1),
        (_last_ctl([-1, -1, 5]), 1),  # an earlier R at another sequence number: R again
        (_last_ctl([-1, -1, -1]), 1),
        (_set_end(0, bits=1 << 5), 1),  # 'R' already there
        (_set_end(0, state=3), 1),
        (_set_end(1, state=3), 1),
        (_set_end(1, state=5), 1),  # the peer closed: the clock stops
        (_set_end(0, state=5), 0),
        (_set_end(0, state=0), 0),
        (_set_end(1, state=6), 0),
        (_set_end(0, base=-1), 0),
        (_set_end(1, nxt=-1), 1),  # the peer's deliv read from the object
        (_set_end(1, dack=-1), 1),
        (_hole, 1),  # the sender's deliv read from the object
        (_flow_value(state=1), 0),
        (_flow_value(stop=-1), 0),  # an int: C does not read it
        (_flow_value(stop=50.0), 1),
    ],
)
@pytest.mark.parametrize("flags", [0x04, 0x14])
def test_rst_after_unusual_states(tamper: Tamper, in_c: int, flags: int) -> None:
    s = g.TcpSession(ROUTE, 40010, 80)
    frames = [*s.handshake(), *s.send(False, b"s" * 10), s.ack(True)]
    c, sv = s.next_seq(True), s.next_seq(False)
    frames += [_seg(s, True, seq=c, ack=sv, flags=flags), _seg(s, False, seq=sv, ack=c)]
    assert rst_ways(_timed(frames), tamper, 5) == in_c


def test_rst_without_the_push_is_handed_back() -> None:
    s = g.TcpSession(ROUTE, 40010, 80)
    frames = [*s.handshake(), *s.send(True, b"c" * 10), s.ack(False), s.reset(True)]
    pipe = Pipeline(Config.default(), print, geo=NullGeo(), uids=UidSource(3))
    head = mapped(_timed(frames[:-1]))
    pipe.run(head.rest(head.start))
    table = pipe.table
    data = pcap_bytes(_timed(frames[-1:], 100.5))
    conds = fast_loop().conds()[core.CondReason.RST]
    _, done, _, _, status, _ = fast_loop().run(
        table.flows, data, 24, len(data), True, 1e-6, table.next_sweep, 10
    )
    assert (done, status) == (0, FastStatus.COND)
    assert fast_loop().conds()[core.CondReason.RST] - conds == 1


def _handed_all(path: Path) -> tuple[list[str], list[str]]:
    """Every record of a capture as FastLoop.run hands it back (an empty table: each
    common-shape packet is new) and as Python makes it from walk_pcap's record (the time
    as Python computes it, :func:`netwatch.core.as_decoded`), each as repr."""
    data = path.read_bytes()
    header = PcapHeader.parse(data[:24])
    little, tick = header.byteorder == "<", header.tick_s
    got: list[str] = []
    off, status = 24, FastStatus.FULL
    while status not in (FastStatus.END, FastStatus.CAPLEN):
        off, _, _, _, status_n, rec = fast_loop().run(
            {}, data, off, len(data), little, tick, float("inf"), 1
        )
        status = FastStatus(status_n)
        if rec is not None:
            assert status in (FastStatus.ODD, FastStatus.NEW)
            assert (rec[3] is None) is (status == FastStatus.ODD)
            got.append(repr(rec))
    want: list[str] = []
    batch = core.walk_pcap(data, 24, len(data), little=little, ethernet=True, limit=10**7)
    for r in batch:
        frame = data[r.frame_off : r.frame_off + r.caplen]
        want.append(repr((r.sec + r.frac * tick, r.wirelen, frame, core.as_decoded(r, frame))))
    return got, want


def test_a_packet_is_handed_back_in_the_decoders_shape(site_capture: Path) -> None:
    """What C hands back (time, wire length, frame, the decoder's tuple) is what Python
    made of the record before: on the site capture and pcaps/ (IPv6, VLANs, odd frames)."""
    paths = [site_capture, *sorted(p for p in (REPO / "pcaps").rglob("*.pcap") if p.is_file())]
    kinds = set()
    for path in paths:
        got, want = _handed_all(path)
        assert got == want, path.name
        kinds |= {w.rsplit(", ", 1)[-1] == "None)" for w in want}
    assert kinds == {True, False}  # odd and common-shape frames both seen


# -- a payload the deep parsers want: counted in C, the deep step Python's (DEEP) ------------


def deep_ways(
    frames: Frames, tamper: Tamper = _untouched, split: int = 0, cfg: Config | None = None
) -> tuple[int, int, int]:
    """:func:`three_ways` after every frame from the ``split``-th on (the table, deep
    parsers' results and budgets included, compared after each); returns how many first
    payloads (D/d) C applied, how many payloads it handed over as DEEP and how many of
    those were TCP, over the whole frames."""
    for end in range(max(split, 1), len(frames) + 1):
        three_ways(frames[:end], tamper, split, cfg)
    loop = fast_loop()
    before = loop.first_datas, loop.deeps, loop.deep_tcp
    three_ways(frames, tamper, split, cfg)
    return loop.first_datas - before[0], loop.deeps - before[1], loop.deep_tcp - before[2]


def _hellos(route: g.Route = ROUTE, client_isn: int = 1000, server_isn: int = 5000) -> Frames:
    """A TLS connection (handshake, ClientHello, ServerHello, application data both ways,
    close) and a DNS query and its answer."""
    s = g.TcpSession(route, 40010, 443, client_isn=client_isn, server_isn=server_isn)
    frames = [*s.handshake()]
    frames += s.send(True, g.tls_client_hello("cam.example", client_random=b"r" * 32))
    frames += s.send(False, g.tls_server_hello(server_random=b"s" * 32))
    frames += [s.ack(True), *s.send(True, b"\x17" * 300), *s.send(False, b"\x17" * 900)]
    frames += [s.ack(True), *s.close()]
    answer = [g.DnsRecord("cam.example", g.DnsType.A, "192.0.2.7")]
    frames.append(g.udp_frame(route, 53001, 53, g.dns_query(7, "cam.example")))
    frames.append(
        g.udp_frame(
            route.reverse(), 53, 53001, g.dns_response(7, "cam.example", g.DnsType.A, answer)
        )
    )
    return _timed(frames)


def test_hellos_and_dns_answer_counted_in_c() -> None:
    """The ClientHello and ServerHello (each its direction's first payload: D/d applied in
    C), and the DNS answer: counted in C,
    the deep step Python's, the table equal to the general path's after every packet."""
    first_datas, deeps, deep_tcp = deep_ways(_hellos())
    assert first_datas == 2
    assert deep_tcp == 2  # the two hellos (the TLS parser is done then: no budget left)
    assert deeps == deep_tcp + 1  # and the DNS answer (the query started its flow)


@pytest.mark.parametrize("isns", [(0xFFFFFF00, 0x7FFFFFF0), (0xFFFFFFFF, 0), (0, 0xFFFFFFFE)])
def test_hellos_over_ipv6_and_isns_at_the_wrap(isns: tuple[int, int]) -> None:
    assert deep_ways(_hellos(ROUTE6, *isns))[:2] == (2, 3)


def test_deep_budget_exhausted_or_odd() -> None:
    """A budget of one payload per direction (later payloads: the fast branch), a budget
    made negative (DEEP: the deep step inspects nothing) and a budget of another type (a
    bool: VALUE, the general path)."""
    cfg = Config.default()
    cfg = replace(cfg, deep=replace(cfg.deep, max_payload_packets=1))
    assert deep_ways(_hellos(), cfg=cfg)[:2] == (2, 3)

    def negative(pipe: Pipeline) -> None:
        for f in pipe.table.flows.values():
            f.deep_o = f.deep_r = -1

    assert deep_ways(_hellos(), negative, 3)[:2] == (2, 5)

    def odd(pipe: Pipeline) -> None:
        for f in pipe.table.flows.values():
            f.deep_o = f.deep_r = True  # a bool is an int to mypy, not to C

    assert deep_ways(_hellos(), odd, 3)[:2] == (0, 1)  # only the DNS answer (a flow after)


@pytest.mark.parametrize(
    ("tamper", "delta"),
    [
        (_untouched, 0),
        *_UNUSUAL_ENDPOINTS,
        (_set_end(1, state=3), 0),  # the peer partial
        (_seqmax_behind, 0),  # the payload beyond the highest seen: _out_of_order
        (_set_end(0, letters="SHADFRCTGWIQ"), 0),  # another letter set: its D appended
        (_set_end(0, bits=1 << 2), 0),  # other letters already set
    ],
)
@pytest.mark.parametrize("flags", [g.TcpFlag.ACK | g.TcpFlag.PSH, g.TcpFlag.PSH])
def test_first_payload_after_unusual_endpoint_states(
    tamper: Tamper, delta: int, flags: int
) -> None:
    """A direction's first payload after states the fast branch's own tests let through but
    C's first-payload branch must recompute or leave to Python (with and without the ACK
    flag): the table equals the general path's either way."""
    s = g.TcpSession(ROUTE, 40010, 80)
    frames = [*s.handshake()[:2]]
    c, sv = s.next_seq(True), s.next_seq(False)
    frames.append(_seg(s, True, seq=c, ack=sv + delta, flags=flags, payload=b"GET / HTTP/1.0"))
    s.advance(True, 14, 1)
    frames += [*s.send(False, b"s" * 50), s.ack(True), *s.send(True, b"c" * 20)]
    in_c = deep_ways(_timed(frames), tamper, 2)[0]
    assert in_c <= 2


def test_first_payloads_in_c_unless_tampered() -> None:
    """The untouched case of the test above takes both first payloads in C."""
    s = g.TcpSession(ROUTE, 40010, 80)
    frames = [*s.handshake(), *s.send(True, b"c" * 14), *s.send(False, b"s" * 50)]
    assert deep_ways(_timed(frames))[0] == 2
    frames = [*s.handshake()[:2]]
    frames += [_seg(s, True, seq=s.next_seq(True), ack=s.next_seq(False), payload=b"x" * 9)]
    assert deep_ways(_timed(frames), _set_end(1, dack=-1), 2)[0] == 1  # acks what was seen


def test_random_segments_hit_first_payloads_and_deep() -> None:
    got = [deep_ways(_random_session(seed)) for seed in range(12)]
    assert sum(first for first, _, _ in got) >= 10
    assert sum(tcp for _, _, tcp in got) >= 10


def test_deep_hand_back_shape_and_opt_in() -> None:
    """Without ``deep`` a payload the parsers want is handed back as COND (UDP_DEEP,
    nothing counted); with it, as DEEP: (ts, wire length, frame, (the table's flow,
    is_orig, payload offset, payload length)), the flow's counters already moved."""
    query = g.udp_frame(ROUTE, 53001, 53, g.dns_query(7, "cam.example"))
    answer = g.dns_response(7, "cam.example", g.DnsType.A, [])
    reply = g.udp_frame(ROUTE.reverse(), 53, 53001, answer)
    pipe = Pipeline(Config.default(), print, geo=NullGeo(), uids=UidSource(3))
    head = mapped(_timed([query]))
    pipe.run(head.rest(head.start))
    table = pipe.table
    (f,) = table.flows.values()
    data = pcap_bytes(_timed([reply], 100.5))
    loop = fast_loop()
    conds = loop.conds()[core.CondReason.UDP_DEEP]
    args = (table.flows, data, 24, len(data), True, 1e-6, table.next_sweep, 10)
    _, done, _, _, status, rec = loop.run(*args)
    assert (done, status, f.r_pkts) == (0, FastStatus.COND, 0)
    assert loop.conds()[core.CondReason.UDP_DEEP] - conds == 1
    assert rec is not None and len(rec[3] or ()) == 15
    deeps = loop.deeps
    _, done, _, _, status, rec = loop.run(*args, None, False)
    assert (done, status, loop.deeps) == (0, FastStatus.COND, deeps)
    _, done, _, _, status, rec = loop.run(*args, None, True)
    assert (done, status, loop.deeps) == (0, FastStatus.DEEP, deeps + 1)
    assert rec == (100.5, len(reply), reply, (f, False, len(reply) - len(answer), len(answer)))
    assert (f.r_pkts, f.r_bytes, f.last, f.deep_r) == (1, len(answer), 100.5, 8)


def _snapped(frames: list[tuple[float, bytes, int]]) -> MappedPcap:
    """A classic pcap of (time, frame, captured length) records (a snap length cuts some)."""
    parts = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for ts, frame, caplen in frames:
        sec, usec = divmod(round(ts * 1_000_000), 1_000_000)
        data = frame[:caplen]
        parts.append(struct.pack("<IIII", sec, usec, len(data), len(frame)) + data)
    raw = b"".join(parts)
    return MappedPcap(raw, 24, len(raw), PcapHeader.parse(raw[:24]), ReadStats())


@pytest.mark.parametrize("variant", ["ack beyond", "cut", "both first", "plain"])
def test_payload_the_parsers_want_acking_beyond_or_cut(variant: str) -> None:
    """A payload the deep parsers still want, after the direction's first (D set), that
    acknowledges beyond the peer's delivered data or was cut by the snap length: the
    general path's, not DEEP (the table and records equal the general path's)."""
    s = g.TcpSession(ROUTE, 40010, 80)
    frames = [*s.handshake(), *s.send(True, b"GET /a HTTP/1.0\r\n\r\n")]
    frames += s.send(False, b"HTTP/1.0 200 OK\r\n\r\n")
    c, sv = s.next_seq(True), s.next_seq(False)
    ack = sv + (7 if variant == "ack beyond" else 0)
    last = _seg(s, True, seq=c, ack=ack, flags=g.TcpFlag.ACK | g.TcpFlag.PSH, payload=b"x" * 300)
    if variant == "both first":
        frames = [*s.handshake()]
        c, sv = s.next_seq(True), s.next_seq(False)
        last = _seg(s, True, seq=c, ack=sv, payload=b"x" * 300)
    timed = [(100.0 + i * 0.001, f, len(f)) for i, f in enumerate(frames)]
    timed.append((100.5, last, 80 if variant in ("cut", "both first") else len(last)))
    states, records, deeps = [], [], 0
    for fused in (True, False):
        recs: list[dict[str, Any]] = []
        pipe = Pipeline(Config.default(), recs.append, geo=NullGeo(), uids=UidSource(3))
        head = _snapped(timed[:-1])
        pipe.run(head.rest(head.start))
        for f in pipe.table.flows.values():  # the parsers still want it (HTTP is done)
            f.deep_o = f.deep_r = 3
        m = _snapped(timed[-1:])
        before = fast_loop().deeps
        if fused:
            run_core(pipe, m)
            deeps = fast_loop().deeps - before
        else:
            pipe.run(m.rest(m.start))
        states.append(_table_state(pipe))
        pipe.finish()
        records.append(recs)
    assert states[0] == states[1]
    assert records[0] == records[1]
    assert deeps == (variant == "plain")


def test_first_payload_after_the_peer_sent_data_in_the_fast_branch() -> None:
    """The peer's data went through the fast branch (its ``seqmax`` moved alone, ``deliv``
    stale), then its state changed (here: set to reset, so its ``nxt`` becomes -1 and
    ``deliv`` is read as stored): C's first payload of the other direction must write the
    peer's ``deliv`` as tcp_packet's prologue does. The head runs through each loop itself."""
    s = g.TcpSession(ROUTE, 40010, 80)
    frames = [*s.handshake()]
    for _ in range(12):  # beyond the deep parsers' budget: the fast branch's
        frames += s.send(False, b"s" * 100)
    head = _timed(frames)
    tail = _timed(s.send(True, b"c" * 30), head[-1][0] + 0.001)
    states, firsts = [], 0
    for loop in (run_core, run_mapped, None):
        pipe = Pipeline(Config.default(), print, geo=NullGeo(), uids=UidSource(3))
        m = mapped(head)
        if loop is None:
            pipe.run(m.rest(m.start))
        else:
            loop(pipe, m)
        _set_end(1, state=6)(pipe)
        before = fast_loop().first_datas
        m = mapped(tail)
        if loop is None:
            pipe.run(m.rest(m.start))
        else:
            loop(pipe, m)
        if loop is run_core:
            firsts = fast_loop().first_datas - before
        states.append(_table_state(pipe))
    assert states[0] == states[2] and states[1] == states[2]
    assert firsts == 1


# -- new flows made in C (run's new_flows: FastStatus.STARTED) -------------------------------


def new_ways(frames: Frames, cfg: Config | None = None, *, every: bool = True) -> int:
    """The frames through the C loop making new flows itself, the C loop handing them back
    (``corefeed.START`` off: ``FlowTable.first_packet`` makes them) and the general path:
    the flow table (every attribute of every flow and endpoint, the timer heaps with their
    tiebreaks, ``created``, the next sweep) after every frame (``every``; else after the
    last) and the records after the end must be equal. Returns how many flows C made over
    the whole frames."""
    made = 0
    for end in range(1, len(frames) + 1) if every else [len(frames)]:
        states, records = [], []
        for way in ("c", "handed", "general"):
            recs: list[dict[str, Any]] = []
            pipe = Pipeline(cfg or Config.default(), recs.append, geo=NullGeo(), uids=UidSource(3))
            m = mapped(frames[:end])
            before = fast_loop().starts
            if way == "general":
                pipe.run(m.rest(m.start))
            else:
                corefeed.START = way == "c"
                try:
                    run_core(pipe, m)
                finally:
                    corefeed.START = True
                if way == "handed":
                    assert fast_loop().starts == before
                else:
                    made = fast_loop().starts - before
            states.append(_table_state(pipe))
            pipe.finish()
            records.append(recs)
        assert states[0] == states[2]
        assert states[1] == states[2]
        assert records[0] == records[2] and records[1] == records[2]
    return made


_HOSTS4 = ["10.0.0.5", "10.0.0.9", "192.0.2.7", "255.255.255.255", "224.0.0.251"]
_HOSTS4 += ["239.255.255.250", "240.0.0.1", "223.255.255.255", "255.255.255.254"]
_HOSTS6 = ["fd00::5", "fd00::9", "ff02::fb", "fe80::1", "feff::1"]
#: likely server ports of TCP and UDP (Zeek's), DNS ports, and ports of neither
_PORTS = [53, 67, 68, 123, 137, 443, 1900, 5353, 5355, 40000, 80, 22, 8080, 20000, 3478, 0]
_SYN, _ACK = int(g.TcpFlag.SYN), int(g.TcpFlag.ACK)
_FIRST_FLAGS = [_SYN, _SYN, _SYN | 0x08, _SYN | 0xC0, _SYN | 0x20, _SYN | _ACK, _ACK, _SYN | 1]
_FIRST_FLAGS += [int(g.TcpFlag.RST), _ACK | 0x08]


def _first_packets(seed: int, n: int = 40) -> Frames:
    """Random packets, most the first of their flow: UDP and TCP over IPv4 and IPv6 (with or
    without a VLAN tag) between unicast, broadcast and multicast addresses, from and to
    likely server ports, DNS ports and others; TCP with every kind of first segment (bare
    SYNs with extra flags, with payload or a zero window, SYN-ACKs, ACKs, SYN+FIN, RSTs);
    times spread so that timers run in between; now and then a packet of a flow seen."""
    rng = random.Random(seed)
    frames: Frames = []
    t = 100.0
    for _ in range(n):
        t += rng.choice([0.0, 0.001, 0.001, 0.3, 2.0, 11.0])
        if frames and rng.random() < 0.1:
            frames.append((t, rng.choice(frames)[1]))
            continue
        hosts = _HOSTS6 if rng.random() < 0.3 else _HOSTS4
        route = g.Route.of(
            "bc:ad:28:00:00:01",
            rng.choice(hosts[:3]),
            "00:11:22:33:44:55",
            rng.choice(hosts),
            rng.choice([(), (7,)]),
        )
        sport, dport = rng.choice(_PORTS), rng.choice(_PORTS)
        payload = rng.choice([b"", b"", b"q" * 20])
        if rng.random() < 0.5:
            frames.append((t, g.udp_frame(route, sport, dport, payload)))
        else:
            frame = g.tcp_frame(
                route,
                sport,
                dport,
                seq=rng.choice([0, 1000, 2**31, 2**32 - 1]),
                ack=rng.choice([0, 77]),
                flags=rng.choice(_FIRST_FLAGS),
                payload=payload,
                window=rng.choice([64240, 64240, 0]),
            )
            frames.append((t, frame))
    return frames


def _short_timers(cfg: Config) -> Config:
    """Timers shorter than the sweep interval (the DNS check and the UDP idle timeout move
    the next sweep; unanswered SYNs end soon) and a table of 5 flows (evictions)."""
    flows = replace(
        cfg.flows, udp_idle_s=0.4, dns_idle_s=0.25, tcp_attempt_s=0.5, tcp_idle_s=3, max_flows=5
    )
    return replace(cfg, flows=flows)


@pytest.mark.parametrize("seed", range(12))
def test_random_first_packets_made_in_c_as_in_python(seed: int) -> None:
    frames = _first_packets(seed)
    assert new_ways(frames) > 5
    new_ways(frames, _short_timers(Config.default()))


def test_random_first_packets_hit_every_new_flow_kind() -> None:
    """Over more seeds (compared after the last packet only): C makes most flows, with and
    without a flip, DNS checks, IPv6, tags, payloads; Python the rest."""
    made = 0
    loop = fast_loop()
    for seed in range(100, 130):
        before = loop.reasons()[FastStatus.NEW]
        made += new_ways(_first_packets(seed, 80), every=False)
        new_ways(_first_packets(seed, 80), _short_timers(Config.default()), every=False)
        assert loop.reasons()[FastStatus.NEW] > before  # the rest handed back
    assert made > 600


def _udp_from(sport: int, dport: int, dst: str) -> bytes:
    v6 = ":" in dst
    route = g.Route.of(
        "bc:ad:28:00:00:01", "fd00::5" if v6 else "10.0.0.5", "00:11:22:33:44:55", dst
    )
    return g.udp_frame(route, sport, dport, b"")


@pytest.mark.parametrize(
    ("sport", "dport", "dst", "flipped"),
    [
        (53, 40000, "10.0.0.9", True),
        (123, 40000, "10.0.0.9", True),
        (5353, 5353, "224.0.0.251", False),
        (53, 40000, "255.255.255.255", False),
        (53, 40000, "224.0.0.1", False),
        (53, 40000, "239.255.255.255", False),
        (53, 40000, "240.0.0.1", True),
        (53, 40000, "223.255.255.255", True),
        (53, 40000, "255.255.255.254", True),
        (53, 40000, "ff02::fb", False),
        (53, 40000, "fe80::1", True),
        (53, 123, "10.0.0.9", False),
        (40000, 53, "10.0.0.9", False),
        (80, 40000, "10.0.0.9", False),  # a TCP port only
        (67, 68, "255.255.255.255", False),
        (67, 68, "10.0.0.9", True),
    ],
)
def test_zeeks_flip_of_a_new_udp_flow_in_c(sport: int, dport: int, dst: str, flipped: bool) -> None:
    warm = _udp_from(9, 9, "fd00::9" if ":" in dst else "10.0.0.9")  # the UDP idle heap
    frames = _timed([warm, _udp_from(sport, dport, dst), warm])
    assert new_ways(frames) == 1
    pipe = Pipeline(Config.default(), print, geo=NullGeo(), uids=UidSource(3))
    run_core(pipe, mapped(frames))
    (f,) = [f for f in pipe.table.flows.values() if {f.orig_p, f.resp_p} == {sport, dport}]
    assert (f.hist == ["^"]) is flipped and (f.orig_h == g.ip_bytes(dst)) is flipped


def _warm_table(frames: Frames) -> Pipeline:
    """A pipeline whose table has seen the frames (the UDP and TCP idle heaps cached)."""
    pipe = Pipeline(Config.default(), print, geo=NullGeo(), uids=UidSource(3))
    run_core(pipe, mapped(frames))
    return pipe


_WARM = _timed(
    [
        g.udp_frame(ROUTE, 9, 9, b""),
        g.tcp_frame(ROUTE, 9, 9, seq=1, ack=0, flags=_SYN),
    ]
)
_NEW_UDP = g.udp_frame(ROUTE, 5000, 53, b"x" * 12)  # a DNS port: the DNS check too
_NEW_SYN = g.tcp_frame(ROUTE, 40020, 80, seq=5, ack=0, flags=_SYN)


def _run_new(pipe: Pipeline, frame: bytes, items: Any) -> tuple[int, Any]:
    data = pcap_bytes([(100.5, frame)])
    _, _, _, _, status, rec = fast_loop().run(
        pipe.table.flows, data, 24, len(data), True, 1e-6, pipe.table.next_sweep, 10,
        pipe.table.closed_at, True, items,
    )  # fmt: skip
    return status, rec


def _snapshot(pipe: Pipeline) -> str:
    return _table_state(pipe) + repr(pipe.table._uid())


class _WithInit(Flow):
    __slots__ = ()

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)


class _EndWithInit(Endpoint):
    __slots__ = ()

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)


@pytest.mark.parametrize("types", [(_WithInit, Endpoint), (Flow, _EndWithInit)])
def test_a_flow_or_endpoint_type_with_its_own_init_is_handed_back(types: tuple[type, type]) -> None:
    """C makes flows and endpoints without calling their type: a subclass whose ``__init__``
    is its own (a fast loop over it is allowed) gets its new flows handed back."""
    loop = core.fast_loop(*types)
    pipe = _warm_table(_WARM)
    items = pipe.table.core_new_flows()
    assert items is not None
    items = (items[0], *types, *items[3:])
    for frame in (_NEW_UDP, _NEW_SYN):
        data = pcap_bytes([(100.5, frame)])
        table = pipe.table
        _, _, _, _, status, _ = loop.run(
            table.flows, data, 24, len(data), True, 1e-6, table.next_sweep, 10, table.closed_at,
            True, items,
        )  # fmt: skip
        assert status == FastStatus.NEW


def _tampered(i: int, value: object) -> Callable[[tuple[Any, ...]], object]:
    return lambda items: (*items[:i], value, *items[i + 1 :])


def _idle_pair(pair: object) -> Callable[[tuple[Any, ...]], object]:
    def make(items: tuple[Any, ...]) -> object:
        heaps = dict(items[6])
        heaps[17] = heaps[6] = pair
        return (*items[:6], heaps, *items[7:])

    return make


@pytest.mark.parametrize(
    "tamper",
    [
        list,
        lambda items: items[:-1],
        lambda items: (*items, None),
        _tampered(1, PyFlow),
        _tampered(1, _WithInit),
        _tampered(2, PyEndpoint),
        _tampered(3, None),
        _tampered(4, [1, 2]),
        _tampered(5, None),
        _tampered(6, []),
        _tampered(7, ()),
        _tampered(9, "10"),
        _tampered(9, 2**60),
        _tampered(10, ()),
        _tampered(12, None),
        _tampered(13, 1.5e6),
        _tampered(13, 2**70),
        _tampered(17, b"\0" * 65535),
        _tampered(17, bytearray(65536)),
        _tampered(18, {}),
        _idle_pair((60.0,)),
        _idle_pair(("60", [])),
        _idle_pair((60.0, ())),
        _idle_pair([60.0, []]),
    ],
)
def test_new_flow_items_of_another_type_hand_the_packet_back(
    tamper: Callable[[tuple[Any, ...]], object],
) -> None:
    """Anything in ``new_flows`` not of the type C reads hands the packet back as NEW with
    nothing changed (no uid drawn, no tie, no entry), for a UDP datagram and a bare SYN."""
    for frame in (_NEW_UDP, _NEW_SYN):
        pipe = _warm_table(_WARM)
        items = pipe.table.core_new_flows()
        assert items is not None
        twin = _warm_table(_WARM)
        status, rec = _run_new(pipe, frame, tamper(items))
        assert status == FastStatus.NEW and len(rec[3]) == 15
        assert _snapshot(pipe) == _snapshot(twin)
        status, _ = _run_new(pipe, frame, items)  # untampered: made
        assert status == FastStatus.STARTED


def test_full_table_first_of_a_protocol_and_other_first_segments_handed_back() -> None:
    cfg = replace(Config.default(), flows=replace(Config.default().flows, max_flows=2))
    pipe = Pipeline(cfg, print, geo=NullGeo(), uids=UidSource(3))
    pipe.table.sweep(100.0)  # the next sweep after the packet's time
    items = pipe.table.core_new_flows()
    assert _run_new(pipe, _NEW_UDP, items)[0] == FastStatus.NEW  # no UDP idle heap yet
    run_core(pipe, mapped(_WARM))
    assert _run_new(pipe, _NEW_UDP, items)[0] == FastStatus.NEW  # two flows: full
    pipe = _warm_table(_WARM)
    items = pipe.table.core_new_flows()
    for flags, payload, window in [
        (_SYN | _ACK, b"", 100),
        (_SYN, b"x", 100),
        (_SYN, b"", 0),
        (_SYN | 1, b"", 100),
        (_SYN | 4, b"", 100),
        (_ACK, b"", 100),
    ]:
        syn = g.tcp_frame(
            ROUTE, 40021, 80, seq=5, ack=0, flags=flags, payload=payload, window=window
        )
        assert _run_new(pipe, syn, items)[0] == FastStatus.NEW
    assert _run_new(pipe, _NEW_SYN, None)[0] == FastStatus.NEW


def test_started_record_and_counters() -> None:
    pipe = _warm_table(_WARM)
    starts = fast_loop().starts
    status, rec = _run_new(pipe, _NEW_UDP, pipe.table.core_new_flows())
    ts, wirelen, frame, (f, is_orig, off, plen) = rec
    assert (status, ts, wirelen, frame) == (FastStatus.STARTED, 100.5, len(_NEW_UDP), _NEW_UDP)
    assert (is_orig, off, plen) == (True, 14 + 4 + 20 + 8, 12)  # a VLAN tag; padded
    assert pipe.table.flows[f.key] is f and fast_loop().starts == starts + 1
    assert (f.o_pkts, f.o_bytes, f.r_pkts, f.hist, f.tcp, f.keep) == (1, 12, 0, None, None, 0)
    status, rec = _run_new(pipe, _NEW_SYN, pipe.table.core_new_flows())
    assert status == FastStatus.STARTED and rec[3][3] == 0 and rec[3][0].hist == ["S"]
    hits = fast_loop().flow_hits  # a flow made in C is in the flow cache at once
    status, _ = _run_new(pipe, g.udp_frame(ROUTE, 5000, 53, b""), pipe.table.core_new_flows())
    assert status == FastStatus.END and fast_loop().flow_hits == hits + 1
    assert (f.o_pkts, f.o_bytes) == (2, 12)


def _failing(where: str) -> Callable[[Pipeline], tuple[Any, ...]]:
    def make(pipe: Pipeline) -> tuple[Any, ...]:
        items = pipe.table.core_new_flows()
        assert items is not None
        table = pipe.table
        pushes = 0

        def push(heap: list[Any], entry: Any) -> None:
            nonlocal pushes
            pushes += 1
            if where == f"push{pushes}":
                raise RuntimeError(where)
            heapq.heappush(heap, entry)

        def uid() -> str:
            raise RuntimeError(where)

        class Tie:
            def __iter__(self) -> Tie:
                return self

            def __next__(self) -> int:
                raise RuntimeError(where)

        class NoCreated:
            next_sweep = table.next_sweep
            created = 0

            def __setattr__(self, name: str, value: object) -> None:
                raise RuntimeError(where)

        changes: dict[str, dict[int, object]] = {
            "uid": {3: uid},
            "tie": {4: Tie()},
            "push1": {5: push},
            "push2": {5: push},
            "created": {0: NoCreated()},
        }
        changed = changes[where]
        return tuple(changed.get(i, item) for i, item in enumerate(items))

    return make


@pytest.mark.parametrize("where", ["uid", "tie", "push1", "push2", "created"])
def test_a_failing_registration_leaves_no_flow(where: str) -> None:
    """An error while a new flow is made or registered (the uid, a tie, a heap push, the
    table's ``created``) stops the run with that error, and the flow is not left in the
    table: taken out of the dict again and ended (state 2) for any timer entry pushed."""
    pipe = _warm_table(_WARM)
    flows, created = dict(pipe.table.flows), pipe.table.created
    items = _failing(where)(pipe)
    with pytest.raises(RuntimeError, match=where):
        _run_new(pipe, _NEW_UDP, items)
    assert pipe.table.flows == flows and pipe.table.created == created
    entries: list[tuple[Any, ...]] = [e for h in pipe.table._heaps.values() for e in h]
    for entry in [*entries, *pipe.table._checks]:
        assert entry[2].state == 2 or entry[2].key in flows
    status, _ = _run_new(pipe, _NEW_UDP, pipe.table.core_new_flows())  # and then made
    assert status == FastStatus.STARTED


def test_captures_alike_with_new_flows_made_in_c_or_by_python(
    site_capture: Path, pcap_corpus: Path
) -> None:
    """The records of the site capture, pcaps/, the corpus and Zeek's traces are the same
    whether C makes new flows or hands them to ``FlowTable.first_packet`` (and the general
    path's: ``both_ways``); C makes most of them."""
    paths = [site_capture, *sorted((REPO / "pcaps").rglob("*.pcap"))]
    paths += [*real_captures(pcap_corpus), *zeek_traces()]
    starts = fast_loop().starts
    for path in paths:
        made, general = both_ways(path)
        corefeed.START = False
        try:
            handed, _ = both_ways(path)
        finally:
            corefeed.START = True
        assert made == general and handed == general, path.name
    assert fast_loop().starts - starts > 2000


# -- the cells checked once per FRESH_PACKETS packets of an object ------------------------

_WIDE = 1 << 62  # a C int64 (kept as an int cell) beyond the +-2**61 C reads


def _wide_cell(name: str, side: int | None) -> Tamper:
    """``name`` set to _WIDE on every flow (side None) or on one endpoint of the TCP flow."""

    def tamper(pipe: Pipeline) -> None:
        if side is None:
            for f in pipe.table.flows.values():
                setattr(f, name, _WIDE)
        else:
            setattr(_endpoints(pipe)[side], name, _WIDE)

    return tamper


@pytest.mark.parametrize(
    ("name", "side"),
    [
        # (r_bytes: traffic's UDP stream is one way, and TCP does not read it)
        *[(n, None) for n in ("o_pkts", "o_ipb", "o_bytes", "r_pkts", "r_ipb")],
        *[(n, s) for n in ("dack", "nxt", "seqmax") for s in (0, 1)],
    ],
)
def test_a_cell_written_between_runs_is_checked_again(name: str, side: int | None) -> None:
    """A cell C has checked and counted into (the first half), then written from Python with
    an int C keeps as an int but must not read: the next packet that reads it is handed back
    (VALUE), and the records are the general path's."""
    first, second = _split(traffic(100.0, 0.001, 40))
    _, reasons = twin_runs(first, second, _wide_cell(name, side))
    assert reasons[FastStatus.VALUE] > 0


def _wide_tcp_bytes(pipe: Pipeline) -> None:
    (f,) = _flows(pipe, 6)
    f.o_bytes = f.r_bytes = _WIDE  # TCP counts its bytes in sequence space: C never reads these


def test_a_cell_c_does_not_read_keeps_the_flow_in_c() -> None:
    """A TCP flow whose byte counters fail the whole-object check still takes the fast branch
    (its packets' own cells are checked one by one): nothing handed back as VALUE."""
    first, second = _split(traffic(100.0, 0.001, 40))
    done = fast_loop().fast
    _, reasons = twin_runs(first, second, _wide_tcp_bytes)
    assert reasons[FastStatus.VALUE] == 0
    assert fast_loop().fast - done > len(second) * 9 // 10


def test_cells_checked_again_after_fresh_packets() -> None:
    """One check of a flow's cells covers FRESH_PACKETS packets: a counter checked just below
    +-2**61 is counted on by C for exactly that many packets, then checked again, found beyond
    and the rest handed back (VALUE); Python counts them on (the same total)."""
    assert core._CORE is not None  # the autouse fixture has made sure it is loaded
    fresh = core._CORE.FRESH_PACKETS
    frame = g.udp_frame(ROUTE6, 50000, 6000, b"")  # no payload: nothing for the deep parsers
    pipe = Pipeline(Config.default(), lambda rec: None, geo=NullGeo(), uids=UidSource(3))
    run_core(pipe, mapped([(100.0, frame)]))
    (f,) = _flows(pipe, 17)
    start = (1 << 61) - 5
    f.o_pkts = start  # within what C reads: checked at the next packet
    extra = 64
    record = struct.pack("<IIII", 100, 1000, len(frame), len(frame)) + frame
    data = pcap_bytes([])[:24] + record * (fresh + extra)
    m = MappedPcap(data, 24, len(data), PcapHeader.parse(data[:24]), ReadStats())
    done, before = fast_loop().fast, fast_loop().reasons()
    run_core(pipe, m)
    reasons = [b - a for a, b in zip(before, fast_loop().reasons(), strict=True)]
    assert fast_loop().fast - done == fresh
    assert reasons[FastStatus.VALUE] == extra
    assert f.o_pkts == start + fresh + extra


_FLOW_MEMBERS = (
    "app", "deep_o", "deep_r", "ev", "first", "hist", "keep", "key", "name", "odir", "orig_h",
    "orig_mac", "orig_p", "proto", "resp_h", "resp_mac", "resp_p", "state", "stop", "tcp",
    "uid", "vlan",
)  # fmt: skip


def _flows_made_again(pipe: Pipeline) -> None:
    """Each flow's __init__ again with an int time (`last`: C reads a float there); its
    object members (not cells) put back as they were."""
    for f in pipe.table.flows.values():
        members = {name: getattr(f, name) for name in _FLOW_MEMBERS}
        Flow.__init__(f, f.key, f.uid, 100, f.proto)
        for name, value in members.items():
            setattr(f, name, value)


def _endpoint_made_again(pipe: Pipeline) -> None:
    e = _endpoints(pipe)[0]
    # the table's two-argument form (EndpointBase's: an originator after its SYN at _WIDE)
    Endpoint.__init__(e, e.letters, _WIDE)  # type: ignore[call-arg]


@pytest.mark.parametrize("tamper", [_flows_made_again, _endpoint_made_again])
def test_an_object_initialised_again_is_checked_again(tamper: Tamper) -> None:
    """A Flow or Endpoint whose __init__ runs again (cells from Python's values) after C
    checked it: the next packet checks its cells again and is handed back."""
    first, second = _split(traffic(100.0, 0.001, 40))
    _, reasons = twin_runs(first, second, tamper)
    assert reasons[FastStatus.VALUE] > 0
