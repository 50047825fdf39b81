"""Several capture workers, one baseline: real forked processes talking over real pipes.

The failure this guards against: every worker opened ``baseline.sqlite`` and held write
transactions, so one stalled 5 s on the packet path (``database is locked``), and what each
worker learnt was never shared. Here the parent owns the baseline and holds its file locked
the whole time (as another writer did); the workers run the real pipeline on real captures
with overlapping destinations, never open the file, never wait, and the parent emits
``new_destination`` once per destination.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import sqlite3
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from netwatch.alerts.model import Alert, Severity
from netwatch.capture.files import open_capture
from netwatch.config import Config
from netwatch.detect.baseline import Baseline, Candidate, DestinationKey, Verdict
from netwatch.detect.baseline_share import (
    BaselineKnown,
    BaselineObservation,
    BaselineOwner,
    PipeSend,
    WorkerBaseline,
)
from netwatch.detect.engine import Detector
from netwatch.pipeline import Pipeline, camera_vendor_of
from netwatch.signatures.match import SignatureMatcher
from netwatch.testing import pcapgen as g

CAM, CAM_MAC, GW_MAC = "10.20.0.11", "bc:ad:28:1a:2b:01", "02:00:5e:10:00:01"
LEARNED = "81.2.69.142"
NEW = [f"89.160.{i}.7" for i in range(1, 7)]  # six /24 networks: six destinations
CONFIG = (
    "cameras:\n  - {name: lobby-1, ip: 10.20.0.11}\n"
    "learning: {period_s: 10}\ngeoip: {builtin: false}\n"
)
MAX_OBSERVE_S = 0.05  # a worker's baseline call must never wait (the old stall was 5 s)


@dataclass(frozen=True, slots=True)
class WorkerReport:
    """What a worker tells the test when its capture is done."""

    index: int
    local_alerts: tuple[str, ...]  # new_destination alerts the worker emitted itself
    sqlite_fds: tuple[str, ...]  # SQLite files the worker opened itself
    max_observe_s: float
    observations: int
    sent: int


class TimedBaseline:
    """The worker's baseline, with the time of each call taken (the packet path)."""

    def __init__(self, inner: WorkerBaseline) -> None:
        self.inner = inner
        self.max_s = 0.0
        self.calls = 0

    @property
    def period_s(self) -> float:
        return self.inner.period_s

    def observe(self, key: DestinationKey, ts: float, candidate: Candidate) -> Alert | None:
        started = time.perf_counter()
        try:
            return self.inner.observe(key, ts, candidate)
        finally:
            self.calls += 1
            self.max_s = max(self.max_s, time.perf_counter() - started)

    def close(self) -> None:
        self.inner.close()


def _capture(path: Path, dests: list[str]) -> None:
    """The camera's flows: to LEARNED during learning, then to ``dests`` after it."""
    t = g.Trace()
    for i, (dst, at_s) in enumerate([(LEARNED, 1), *((d, 100 + n) for n, d in enumerate(dests))]):
        r = g.Route.of(CAM_MAC, CAM, GW_MAC, dst)
        t.add(at_s * 1_000_000, g.udp_frame(r, 41000 + i, 50500, b"q"))
    t.add(200_000_000, g.udp_frame(g.Route.of(CAM_MAC, CAM, GW_MAC, LEARNED), 42000, 50500, b"q"))
    t.write(path)


def _sqlite_fds() -> tuple[str, ...]:
    """This process's open SQLite files, as ``fd:path``."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if "sqlite" in target:
            found.append(f"{fd}:{target}")
    return tuple(found)


def _worker(
    index: int, cfg: Config, pcap: Path, signatures: SignatureMatcher, conn: Connection
) -> None:
    inherited = set(_sqlite_fds())  # the parent's, open before the fork
    local: list[str] = []
    timed = TimedBaseline(WorkerBaseline.of(cfg.learning, PipeSend(conn)))
    pipeline = Pipeline(cfg, lambda rec: None, on_alert=lambda a, n: None, signatures=signatures)
    pipeline.detector = Detector(
        cfg,
        pipeline.enrichers,
        camera_vendor_of(signatures),
        lambda a, n: local.append(a.rule),
        signatures,
        baseline=timed,
    )
    pipeline.run_capture(open_capture(pcap))
    pipeline.finish()
    report = WorkerReport(
        index,
        tuple(r for r in local if r == "new_destination"),
        tuple(sorted(set(_sqlite_fds()) - inherited)),
        timed.max_s,
        timed.calls,
        timed.inner.counters.sent,
    )
    conn.send(report)
    conn.close()


def _serve(owner: BaselineOwner, conns: list[Connection], deadline_s: float) -> tuple[
    list[Alert], list[WorkerReport], float
]:  # fmt: skip
    """The parent's loop: decide every observation; the alerts to emit, the reports, and
    the longest time one decision took."""
    emitted: list[Alert] = []
    reports: list[WorkerReport] = []
    slowest = 0.0
    live = list(conns)
    deadline = time.monotonic() + deadline_s
    while live and time.monotonic() < deadline:
        for conn in multiprocessing.connection.wait(live, 0.5):
            assert isinstance(conn, Connection)
            try:
                msg = conn.recv()
            except EOFError:
                live.remove(conn)
                continue
            if isinstance(msg, BaselineObservation):
                started = time.perf_counter()
                alert = owner.receive(msg)
                slowest = max(slowest, time.perf_counter() - started)
                if alert is not None:
                    emitted.append(alert)
            elif isinstance(msg, WorkerReport):
                reports.append(msg)
    return emitted, reports, slowest


def test_two_workers_alert_once_per_destination_and_never_touch_the_file(tmp_path: Path) -> None:
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(CONFIG)
    cfg = Config.load(cfg_path)
    pcaps = [tmp_path / "w0.pcap", tmp_path / "w1.pcap"]
    _capture(pcaps[0], NEW[:4])  # the workers' destinations overlap: NEW[2:4] in both
    _capture(pcaps[1], NEW[2:])
    db_path = tmp_path / "state" / "baseline.sqlite"
    owner = BaselineOwner(Baseline.of(cfg.learning, db_path))
    locker = sqlite3.connect(db_path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")  # as the other worker's write transaction did
    signatures = SignatureMatcher.load()
    ctx = multiprocessing.get_context("fork")
    procs, conns = [], []
    for i, pcap in enumerate(pcaps):
        parent_end, child_end = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_worker, args=(i, cfg, pcap, signatures, child_end))
        proc.start()
        child_end.close()
        procs.append(proc)
        conns.append(parent_end)
    emitted, reports, slowest = _serve(owner, conns, deadline_s=60)
    for proc in procs:
        proc.join(10)
        assert proc.exitcode == 0
    locker.execute("ROLLBACK")
    locker.close()

    assert len(reports) == 2
    dests = sorted(a.evidence["destination"] for a in emitted)
    assert dests == sorted(f"{d.rsplit('.', 1)[0]}.0/24" for d in NEW)  # once each
    assert {a.rule for a in emitted} == {"new_destination"}
    assert owner.counters.by_verdict == {"learned": 1, "known": 3, "new": 6}
    for r in reports:
        assert r.local_alerts == ()  # only the owner emits
        assert r.sqlite_fds == ()  # no worker opened the baseline (or any SQLite file)
        assert r.sent == 5 and r.observations == 6  # the repeat of LEARNED is cached
        assert r.max_observe_s < MAX_OBSERVE_S, f"worker {r.index}: {r.max_observe_s:.3f} s"
    assert slowest < MAX_OBSERVE_S, f"the owner took {slowest:.3f} s for one decision"

    # the owner's file, once unlocked, has everything: a restart knows every destination
    owner.close()
    again = Baseline(db_path, cfg.learning.period_s)
    assert len(again) == 1 + len(NEW)
    first = DestinationKey("lobby-1", "89.160.1.0/24", 50500, "udp")
    assert again.decide(first, 500.0) is Verdict.KNOWN
    again.close()


def _alert(summary: str) -> Alert:
    return Alert(
        ts=0,
        rule="new_destination",
        severity=Severity.MEDIUM,
        device="cam",
        device_ip="10.0.0.5",
        summary=summary,
    )


def test_a_full_pipe_refuses_instead_of_blocking() -> None:
    """Nobody reads the pipe: the worker's sends are refused (counted) and retried later,
    and no call waits."""
    ctx = multiprocessing.get_context("fork")
    reader, writer = ctx.Pipe(duplex=False)
    send = PipeSend(writer)
    worker = WorkerBaseline(10.0, send)
    alert = _alert("x" * 500)
    started = time.perf_counter()
    for i in range(2_000):
        worker.observe(DestinationKey("cam", f"{i}.example", 443, "tcp"), 1.0, lambda: alert)
    assert time.perf_counter() - started < 2.0
    assert worker.counters.send_failed == send.full > 0 and worker.counters.sent > 0
    assert len(worker) == worker.counters.sent  # refused keys are not cached: sent again
    huge = _alert("x" * 5_000)  # above PIPE_BUF: one write could not be atomic
    assert send(BaselineObservation(DestinationKey("c", "d", 1, "udp"), 1.0, huge)) is False
    assert send.too_big == 1
    assert isinstance(reader.recv(), BaselineObservation)  # what was sent reads back whole
    reader.close()
    writer.close()


def test_owner_shares_decided_keys_so_worker_caches_converge() -> None:
    sent: list[object] = []

    def send(msg: object) -> bool:
        sent.append(msg)
        return True

    owner = BaselineOwner(Baseline(None, 10.0), share_keys=True)
    a, b = WorkerBaseline(10.0, send), WorkerBaseline(10.0, send)
    k = DestinationKey("cam", "x.example", 443, "tcp")
    alert = _alert("x")
    a.observe(k, 1.0, lambda: alert)
    (obs,) = sent
    assert isinstance(obs, BaselineObservation)
    assert owner.receive(obs) is None  # learned
    known = owner.known()
    assert isinstance(known, BaselineKnown) and known.keys == (k,)
    b.learn(known)
    b.observe(k, 50.0, lambda: alert)
    assert len(sent) == 1 and owner.known() is None
