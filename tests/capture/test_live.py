"""LiveSource: opening, retrying with backoff, counters, fairness; and Pipeline.advance."""

from __future__ import annotations

import errno
import itertools
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from netwatch.capture import live
from netwatch.capture.afpacket import Ring, RingError, RingSettings, RingStats
from netwatch.capture.bpf import BpfError, compile_filter
from netwatch.capture.files import MappedPcap
from netwatch.capture.linktypes import LinkType
from netwatch.capture.live import MAX_BACKOFF_S, MIN_BACKOFF_S, LiveSource
from netwatch.capture.pcap import PcapHeader, ReadStats, Record
from netwatch.capture.source import Block, CaptureCounts
from netwatch.config import Config
from netwatch.pipeline import Pipeline
from netwatch.testing.pcapgen import Route, TcpSession, udp_frame

SETTINGS = RingSettings(ring_mb=1, block_kb=64)
HEADER = PcapHeader("pcap-ns", "<", 1e-9, 262_144, int(LinkType.ETHERNET))
ROUTE = Route.of("bc:ad:28:00:00:01", "10.0.0.5", "02:00:00:00:00:01", "203.0.113.10")
T0 = 1_700_000_000.0


def make_block(n: int, ts: float, tag: int = 0) -> Block:
    """``n`` UDP frames as pcap records with nanosecond stamps, as a ring hands them over."""
    out = bytearray()
    for i in range(n):
        frame = udp_frame(ROUTE, 40_000 + tag, 9_000, b"block%d-%d" % (tag, i))
        ns = round((ts + i * 1e-3) * 1e9)
        out += (ns // 10**9).to_bytes(4, "little") + (ns % 10**9).to_bytes(4, "little")
        out += len(frame).to_bytes(4, "little") * 2 + frame
    data = bytes(out)
    ns = round((ts + (n - 1) * 1e-3) * 1e9)
    last = ns // 10**9 + ns % 10**9 * 1e-9
    return Block(MappedPcap(data, 0, len(data), HEADER, ReadStats()), n, last)


class FakeRing(Ring):
    """What LiveSource uses of a Ring; its descriptor is a real socket, so poll() works."""

    def __init__(self, interface: str, settings: RingSettings) -> None:  # no socket, no mmap
        self.interface = interface
        self.settings = settings
        self.stats = RingStats()
        self.blocks: list[Block] = []
        self.error = 0
        self.pending_drops = 0
        self.iface_drops = 0
        self.closed = False
        self.sock, self.peer = socket.socketpair()

    def fileno(self) -> int:
        return self.sock.fileno()

    def ready(self) -> bool:
        return bool(self.blocks)

    def read_block(self) -> list[Record] | None:
        raise AssertionError("LiveSource reads blocks as pcap records")

    def read_block_pcap(self) -> Block | None:
        if not self.blocks:
            return None
        block = self.blocks.pop(0)
        self.stats.packets += block.count
        return block

    def pending_error(self) -> int:
        err, self.error = self.error, 0
        return err

    def poll_kernel_stats(self) -> RingStats:
        self.stats.kernel_drops += self.pending_drops  # read-and-reset, as the kernel does
        self.pending_drops = 0
        return self.stats

    def interface_drops(self, *, fresh: bool = False) -> int:
        del fresh
        return self.iface_drops

    def close(self) -> None:
        self.closed = True
        self.sock.close()
        self.peer.close()

    def wake(self) -> None:
        """Make the descriptor readable (as an error or a retired block would)."""
        self.peer.send(b"!")


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Factory:
    """Builds FakeRings; ``failures[name]`` opens fail first (-1: always)."""

    def __init__(self, clock: Clock, failures: dict[str, int] | None = None) -> None:
        self.clock = clock
        self.failures = dict(failures or {})
        self.calls: list[tuple[str, float]] = []
        self.rings: dict[str, list[FakeRing]] = {}

    def __call__(self, name: str, settings: RingSettings) -> Ring:
        self.calls.append((name, self.clock()))
        left = self.failures.get(name, 0)
        if left:
            self.failures[name] = left - 1 if left > 0 else left
            raise RingError(errno.ENODEV, f"{name}: no such interface")
        ring = FakeRing(name, settings)
        self.rings.setdefault(name, []).append(ring)
        return ring

    def ring(self, name: str) -> FakeRing:
        return self.rings[name][-1]

    def attempts(self, name: str) -> list[float]:
        return [t for n, t in self.calls if n == name]

    def close_all(self) -> None:
        for rings in self.rings.values():
            for r in rings:
                if not r.closed:
                    r.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def source(
    names: list[str], clock: Clock, failures: dict[str, int] | None = None
) -> tuple[LiveSource, Factory]:
    factory = Factory(clock, failures)
    return LiveSource(names, SETTINGS, max_wait_s=0.0, clock=clock, ring_factory=factory), factory


@pytest.fixture
def cleanup() -> Iterator[list[Factory]]:
    made: list[Factory] = []
    yield made
    for f in made:
        f.close_all()


# ---------------------------------------------------------------------------- opening


def test_open_survives_one_failing_interface(
    clock: Clock, cleanup: list[Factory], caplog: pytest.LogCaptureFixture
) -> None:
    src, factory = source(["mirror0", "mirror1"], clock, {"mirror1": 1})
    cleanup.append(factory)
    with caplog.at_level(logging.WARNING, logger="netwatch.capture.live"):
        src.open()
    assert "capture on mirror1 failed: mirror1: no such interface; retrying in 1 s" in caplog.text
    counts = src.counts()
    assert counts == {
        "mirror0": CaptureCounts(0, 0, 0, errors=0, up=True),
        "mirror1": CaptureCounts(0, 0, 0, errors=1, up=False),
    }
    stop = threading.Event()
    gen = src.batches(stop)
    assert next(gen) == []  # nothing yet; the retry is not due
    assert factory.attempts("mirror1") == [1000.0]
    clock.now += MIN_BACKOFF_S - 0.01
    assert next(gen) == []
    assert factory.attempts("mirror1") == [1000.0]
    clock.now = 1000.0 + MIN_BACKOFF_S
    assert next(gen) == []
    assert factory.attempts("mirror1") == [1000.0, 1001.0]
    assert src.counts()["mirror1"] == CaptureCounts(0, 0, 0, errors=1, up=True)
    factory.ring("mirror1").blocks.append(make_block(3, T0))
    block = next(gen)
    assert isinstance(block, Block) and block.count == 3
    assert src.counts()["mirror1"].received == 3
    assert src.packets == 3
    stop.set()
    with pytest.raises(StopIteration):
        next(gen)
    assert all(r.closed for rings in factory.rings.values() for r in rings)
    assert src.counts()["mirror1"] == CaptureCounts(3, 0, 0, errors=1, up=False)


def test_open_raises_when_no_interface_opens(clock: Clock) -> None:
    src, factory = source(["mirror0", "mirror1"], clock, {"mirror0": -1, "mirror1": -1})
    with pytest.raises(RingError) as info:
        src.open()
    assert info.value.strerror == "mirror0: no such interface; mirror1: no such interface"
    assert {n: (c.errors, c.up) for n, c in src.counts().items()} == {
        "mirror0": (1, False),
        "mirror1": (1, False),
    }
    assert not factory.rings


def test_open_raises_for_real_missing_interfaces() -> None:
    src = LiveSource(["nw-none0", "nw-none1"], SETTINGS)  # the real Ring
    with pytest.raises(RingError, match="nw-none0: no such interface; nw-none1: no such"):
        src.open()


def test_backoff_doubles_up_to_a_minute(
    clock: Clock, cleanup: list[Factory], caplog: pytest.LogCaptureFixture
) -> None:
    src, factory = source(["good0", "bad0"], clock, {"bad0": -1})
    cleanup.append(factory)
    start = clock.now
    with caplog.at_level(logging.WARNING, logger="netwatch.capture.live"):
        src.open()
        stop = threading.Event()
        gen = src.batches(stop)
        while clock.now < start + 250:
            assert next(gen) == []
            clock.now += 0.5
        stop.set()
        list(gen)
    delays = [b - a for a, b in itertools.pairwise(factory.attempts("bad0"))]
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert MAX_BACKOFF_S == 60
    assert factory.attempts("good0") == [start]
    retries = [r.getMessage().rsplit("retrying in ", 1)[1] for r in caplog.records]
    assert retries == ["1 s", "2 s", "4 s", "8 s", "16 s", "32 s", "60 s", "60 s", "60 s", "60 s"]
    assert src.counts()["bad0"].errors == 10


# ---------------------------------------------------------------------------- reading


def test_blocks_take_turns_between_interfaces(clock: Clock, cleanup: list[Factory]) -> None:
    src, factory = source(["a0", "b0"], clock)
    cleanup.append(factory)
    src.open()
    factory.ring("a0").blocks += [make_block(1, T0 + i, tag=0) for i in range(10)]
    factory.ring("b0").blocks += [make_block(2, T0 + i, tag=1) for i in range(2)]
    stop = threading.Event()
    got = []
    for batch in src.batches(stop):
        if not batch:
            stop.set()
            continue
        assert isinstance(batch, Block)
        got.append("a" if batch.count == 1 else "b")
    assert "".join(got) == "a" * live.BLOCKS_PER_TURN + "bb" + "aa"
    assert src.packets == 14
    assert {n: c.received for n, c in src.counts().items()} == {"a0": 10, "b0": 4}


def test_counts_add_kernel_and_interface_drops(clock: Clock, cleanup: list[Factory]) -> None:
    src, factory = source(["a0"], clock)
    cleanup.append(factory)
    src.open()
    ring = factory.ring("a0")
    ring.blocks.append(make_block(5, T0))
    stop = threading.Event()
    gen = src.batches(stop)
    assert isinstance(next(gen), Block)
    ring.pending_drops, ring.iface_drops = 7, 2
    assert src.counts()["a0"] == CaptureCounts(5, 7, 2, errors=0, up=True)
    ring.pending_drops = 1
    assert src.counts()["a0"] == CaptureCounts(5, 8, 2, errors=0, up=True)
    assert src.counts()["a0"] == CaptureCounts(5, 8, 2, errors=0, up=True)  # read-and-reset
    stop.set()
    list(gen)


def test_an_error_on_a_present_interface_is_counted_and_the_ring_kept(
    clock: Clock, cleanup: list[Factory]
) -> None:
    src, factory = source(["lo"], clock)  # "lo" exists: a down interface comes back by itself
    cleanup.append(factory)
    src.open()
    ring = factory.ring("lo")
    ring.error = errno.ENETDOWN
    ring.wake()
    stop = threading.Event()
    gen = src.batches(stop)
    assert next(gen) == []
    assert src.counts()["lo"] == CaptureCounts(0, 0, 0, errors=1, up=True)
    assert not ring.closed and len(factory.rings["lo"]) == 1
    stop.set()
    list(gen)


def test_a_removed_interface_is_closed_and_reopened(
    clock: Clock, cleanup: list[Factory], caplog: pytest.LogCaptureFixture
) -> None:
    src, factory = source(["nw-gone0"], clock)
    cleanup.append(factory)
    src.open()
    first = factory.ring("nw-gone0")
    first.blocks.append(make_block(4, T0))
    stop = threading.Event()
    gen = src.batches(stop)
    assert isinstance(next(gen), Block)
    first.pending_drops, first.iface_drops = 3, 1
    first.error = errno.ENETDOWN
    first.wake()
    with caplog.at_level(logging.WARNING, logger="netwatch.capture.live"):
        assert next(gen) == []
    assert first.closed
    assert "capture on nw-gone0: " + os.strerror(errno.ENETDOWN) in caplog.text
    assert "interface nw-gone0 is gone" in caplog.text
    # the closed ring's counters are kept
    assert src.counts()["nw-gone0"] == CaptureCounts(4, 3, 1, errors=1, up=False)
    gone_at = clock.now
    assert next(gen) == []
    assert factory.attempts("nw-gone0") == [gone_at]  # not before the backoff
    clock.now += MIN_BACKOFF_S
    assert next(gen) == []
    assert factory.attempts("nw-gone0") == [gone_at, gone_at + MIN_BACKOFF_S]
    second = factory.ring("nw-gone0")
    assert second is not first
    second.blocks.append(make_block(2, T0 + 10))
    assert isinstance(next(gen), Block)
    assert src.counts()["nw-gone0"] == CaptureCounts(6, 3, 1, errors=1, up=True)
    stop.set()
    list(gen)
    assert second.closed


def test_no_busy_loop_while_every_interface_is_closed(cleanup: list[Factory]) -> None:
    clock = Clock()
    factory = Factory(clock)
    cleanup.append(factory)
    src = LiveSource(["nw-gone0"], SETTINGS, max_wait_s=0.1, clock=clock, ring_factory=factory)
    src.open()
    factory.failures["nw-gone0"] = -1
    ring = factory.ring("nw-gone0")
    ring.error = errno.ENODEV
    ring.wake()
    stop = threading.Event()
    gen = src.batches(stop)
    assert next(gen) == []
    assert ring.closed
    t0 = time.monotonic()
    for _ in range(3):
        assert next(gen) == []
    elapsed = time.monotonic() - t0
    stop.set()
    list(gen)
    assert elapsed >= 0.25


# ---------------------------------------------------------------------------- a real ring


def test_live_source_on_loopback() -> None:
    if os.geteuid() != 0:
        pytest.skip("an AF_PACKET ring needs root (CAP_NET_RAW)")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        port = rx.getsockname()[1]
        try:
            bpf = compile_filter(f"udp and port {port}")
        except BpfError as exc:
            pytest.skip(f"libpcap is needed to compile the filter: {exc}")
        settings = RingSettings(ring_mb=2, block_kb=64, retire_ms=10, bpf=bpf)
        src = LiveSource(["lo"], settings, max_wait_s=0.05)
        src.open()
        stop = threading.Event()
        wanted = [b"live-%d-%s" % (i, os.urandom(6).hex().encode()) for i in range(3)]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            for p in wanted:
                tx.sendto(p, ("127.0.0.1", port))
        seen = b""
        deadline = time.monotonic() + 3.0
        blocks = 0
        counts = CaptureCounts()
        for batch in src.batches(stop):
            if isinstance(batch, Block):
                blocks += batch.count
                seen += bytes(batch.mapped.buf)
            if all(p in seen for p in wanted) or time.monotonic() > deadline:
                counts = src.counts()["lo"]
                stop.set()
        assert all(p in seen for p in wanted)
        assert counts.up and counts.errors == 0
        assert counts.received == blocks == src.packets >= len(wanted)
        assert src.counts()["lo"].up is False  # closed when the loop ended


# ---------------------------------------------------------------------------- quiet links


def tcp_flow(t0: float) -> list[tuple[float, int, int, bytes]]:
    s = TcpSession(ROUTE, 40_000, 443)
    frames = [*s.handshake(), *s.send(True, b"x" * 3000), s.ack(False), *s.close()]
    return [(t0 + i * 0.01, int(LinkType.ETHERNET), len(f), f) for i, f in enumerate(frames)]


def test_advance_ends_a_closed_flow_on_a_quiet_link() -> None:
    cfg = Config.from_yaml("geoip: {builtin: false}\n", file="t.yaml")
    records: list[dict[str, Any]] = []
    pipe = Pipeline(cfg, records.append)
    packets = tcp_flow(T0)
    pipe.run(packets)
    last = packets[-1][0]
    assert records == [] and len(pipe.table) == 1  # closed, but lingering
    pipe.advance(last + 1.0)
    assert records == []  # still within tcp_closed_s
    sweep = pipe.table.settings.sweep_interval_s
    pipe.advance(last + cfg.flows.tcp_closed_s + sweep + 1.0)
    assert len(records) == 1 and len(pipe.table) == 0
    rec = records[0]
    assert (rec["id.orig_h"], rec["id.resp_h"], rec["id.resp_p"]) == (
        "10.0.0.5",
        "203.0.113.10",
        443,
    )
    assert (rec["conn_state"], rec["orig_bytes"], rec["orig_pkts"], rec["resp_pkts"]) == (
        "SF",
        3000,
        7,
        3,
    )
    assert rec["ts"] == T0


def test_advance_does_nothing_before_the_next_sweep() -> None:
    cfg = Config.from_yaml("geoip: {builtin: false}\n", file="t.yaml")
    records: list[dict[str, Any]] = []
    pipe = Pipeline(cfg, records.append)
    packets = tcp_flow(T0)
    pipe.run(packets)
    due = pipe.table.next_sweep
    pipe.advance(due - 0.001)
    assert pipe.table.next_sweep == due
    pipe.advance(due)
    assert pipe.table.next_sweep == due + pipe.table.settings.sweep_interval_s
    assert records == []


def test_advance_ends_a_flow_read_from_a_live_block() -> None:
    cfg = Config.from_yaml("geoip: {builtin: false}\n", file="t.yaml")
    records: list[dict[str, Any]] = []
    pipe = Pipeline(cfg, records.append)
    block = make_block(4, T0)
    pipe.run_block(block)
    assert pipe.stats.packets == 4 and records == []
    pipe.advance(block.last_ts + cfg.flows.udp_idle_s + 2.0)
    assert len(records) == 1
    assert (records[0]["proto"], records[0]["orig_pkts"]) == ("udp", 4)
