"""The loop fed by the compiled core must be invisible too: flow records, alerts and kept
evidence equal the general path's, on generated traffic, pcaps/, the corpus and Zeek's
traces (the same captures as tests/test_fastloop.py)."""

from __future__ import annotations

import gc
import struct
import sys
import tracemalloc
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from netwatch import core
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
from netwatch.flow.table import Flow, PyFlow
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


def both_ways(path: Path, cfg: Config | None = None) -> tuple[list[Any], list[Any]]:
    """(C-fed loop, general path): records, packets counted, decoder failures. Checks that
    C and Python agree on the fast branch (:func:`assert_same_conditions`)."""
    out: list[list[Any]] = []
    for fused in (True, False):
        recs: list[dict[str, Any]] = []
        pipe = Pipeline(cfg or Config.default(), recs.append, geo=NullGeo(), uids=UidSource(3))
        pipe.run_mapped = run_core
        before = list(PYTHON_FAST)
        cap = run_one_way(pipe, path, fused)
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
    assert reasons[FastStatus.ODD] == 2 and reasons[FastStatus.NEW] >= 3


def test_hand_back_when_the_deep_parsers_want_the_payload() -> None:
    frames = traffic(100.0, 0.001, 40)
    _, reasons = twin_runs(frames[:1], frames[1:], _untouched)  # every packet after the SYN
    assert reasons[FastStatus.NEW] == 2  # the SYN-ACK's flow is the SYN's; the UDP flows
    assert reasons[FastStatus.COND] >= 3  # the handshake, the parsers' first payloads


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
