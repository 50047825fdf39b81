"""Which per-packet core runs, and the Python side of the compiled one (``netwatch._core``).

The compiled core (``netwatch/_core.c``, built by setup.py when a C compiler is there) walks
the records of a classic pcap buffer with the GIL released and decodes each frame's common
shape (Ethernet, at most two VLAN tags, IPv4 without options or fragments, IPv6 without
extension headers, TCP, UDP that cannot carry a tunnel) into one 88-byte
:class:`CoreRecord`; any other frame is "odd" (``kind`` 0) and belongs to the general
decoder (:mod:`netwatch.decode.walk`). A common-shape record carries exactly the fields of
the :data:`~netwatch.decode.frames.Decoded` tuple Python's decoder gives the same frame
(:func:`as_decoded`; ``tests/test_core.py`` checks it).

It also has the fused loop's fast branch (``FastLoop``, :func:`fast_loop`): C walks, decodes,
finds the packet's flow in Python's flow table and updates its counters in place, and hands
every other packet back to Python (:mod:`netwatch.corefeed` says who owns what). And it holds
the attributes of :class:`~netwatch.flow.table.Flow` and
:class:`~netwatch.flow.tcpstate.Endpoint` (:func:`flow_bases`): whenever the compiled core is
loaded, those two are subclasses of its ``FlowBase``/``EndpointBase`` (the counters the fast
branch writes are C fields: no object per packet), whichever loop runs; without it they are
the pure-Python reference classes (``PyFlow``, ``PyEndpoint``).

Config read: the environment variables ``NETWATCH_PURE=1`` (forces the pure-Python path: the
compiled core is then not imported even when built) and ``NETWATCH_CORE`` (``python``: the
pipeline runs the pure-Python fused loop, :mod:`netwatch.fastloop`, with the core loaded;
unset or ``c``: the loop with its fast branch in C, :mod:`netwatch.corefeed`, whenever the
core is loaded: the default). Known limits: the flow table (its dict, flow start and end,
timers, TCP states) stays Python; the TPACKET_V3 ring
reaches the core only through the pcap records ``Ring.read_block_pcap`` builds.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import IntEnum
from types import ModuleType
from typing import Any, NamedTuple, Protocol

from netwatch.capture.pcap import Buffer
from netwatch.decode.frames import Decoded

#: A payload :meth:`FastLoop.run` counted itself and hands over for the deep parsers' step
#: only (:attr:`FastStatus.DEEP`), or a new flow it made (:attr:`FastStatus.STARTED`): (its
#: flow, is_orig, payload offset in the frame, payload length).
DeepPayload = tuple[Any, bool, int, int]

#: A packet :meth:`FastLoop.run` hands back to Python: (its time, computed as Python
#: computes it, wire length, the captured frame, the :data:`Decoded` tuple of a
#: common-shape frame as :func:`as_decoded` makes it, or None for an odd one; for
#: :attr:`FastStatus.DEEP`, a :data:`DeepPayload`).
Handed = tuple[float, int, bytes, Decoded | DeepPayload | None]


def _load() -> tuple[ModuleType | None, str]:
    """The compiled module (or None) and why the other path was taken."""
    if os.environ.get("NETWATCH_PURE") == "1":
        return None, "NETWATCH_PURE=1"
    try:
        from netwatch import _core  # noqa: PLC0415 (optional: absent without a compiler)
    except ImportError:
        return None, "extension not built"
    return _core, ""


_CORE, _WHY_PURE = _load()
#: "c" when the compiled core is loaded, else "python".
CORE = "python" if _CORE is None else "c"


def describe() -> str:
    """One line for ``netwatch --version``: which core runs, and why not the C one."""
    if _CORE is None:
        return f"core: python ({_WHY_PURE})"
    return "core: c" if use_core_loop() else "core: python (NETWATCH_CORE=python)"


class Kind(IntEnum):
    """What the compiled decode made of a frame."""

    ODD = 0  # not a common shape: the general decoder takes it
    IPV4 = 4
    IPV6 = 6


class Status(IntEnum):
    """Why a :func:`walk_pcap` call returned."""

    END = 0  # the buffer ended (at its end, or inside a record: see ``next``)
    FULL = 1  # ``limit`` records produced
    CAPLEN = 2  # a captured length above MAX_CAPLEN: the record framing is lost


class FastStatus(IntEnum):
    """Why a :meth:`FastLoop.run` call returned (``enum nw_fast_status`` in _core.c); from
    ``ODD`` on, with the record of a packet Python must take."""

    END = 0  # the buffer ended (at its end, or inside a record)
    FULL = 1  # ``limit`` records done
    CAPLEN = 2  # a captured length above MAX_CAPLEN: the general walker takes it from there
    ODD = 3  # not a common shape: the general decoder
    SWEEP = 4  # the packet's time is at or past the table's next sweep: timers first
    NEW = 5  # no flow with the packet's key in the table
    VALUE = 6  # a field of the flow or its endpoints of an unexpected type or range
    KEEP = 7  # the flow keeps evidence frames (``Flow.keep`` != 0)
    NO_TCP = 8  # a TCP packet of a flow without endpoints (``Flow.tcp`` is None)
    COND = 9  # the fast branch's conditions do not hold (see netwatch.fastloop)
    DEEP = 10  # counted in C; only the deep parsers' step is Python's (``run``'s ``deep``)
    STARTED = 11  # a new flow made in C (``run``'s ``new_flows``): on_start, deep in Python


class CondReason(IntEnum):
    """Why the fast branch's conditions failed for a packet handed back as
    :attr:`FastStatus.COND` (``enum nw_cond`` in _core.c): the first that applies, in this
    order."""

    UDP_DEEP = 0  # UDP payload the deep parsers still want
    SYN = 1  # a SYN (with or without other flags)
    FIN = 2  # a FIN (no SYN)
    RST = 3  # a RST (no SYN, no FIN)
    ZERO_WIN = 4  # a zero window
    NO_NXT = 5  # the sender's endpoint needs bookkeeping (``Endpoint.nxt`` < 0)
    SEQ = 6  # not the next in-order sequence number
    TCP_DEEP = 7  # TCP payload the deep parsers still want
    ACK = 8  # the ACK acknowledges beyond the peer's delivered data
    CUT = 9  # payload cut by the snap length
    FIRST_A = 10  # the direction's first bare ACK (history letter A/a)
    FIRST_D = 11  # the direction's first payload (history letter D/d)


class FastLoop(Protocol):
    """``netwatch._core.FastLoop``: the fused loop's fast branch in C over Python's flows."""

    @property
    def fast(self) -> int:
        """Packets the fast branch took here, since construction."""
        ...

    @property
    def key_hits(self) -> int:
        """Flow lookups made with a key from its key cache (4,096 entries), since
        construction."""
        ...

    @property
    def flow_hits(self) -> int:
        """Packets whose flow came straight from its flow cache (no dict lookup; counted in
        ``key_hits`` too), since construction."""
        ...

    @property
    def first_acks(self) -> int:
        """Bare ACKs taken here that were their direction's first (history letter ``A``/
        ``a``, e.g. a handshake's third packet), since construction."""
        ...

    @property
    def first_fins(self) -> int:
        """FINs taken here that were their endpoint's first (the sender partial or
        established before it, the peer partial, established or closed), since
        construction; those that completed a close are counted in :attr:`closes` too."""
        ...

    @property
    def closes(self) -> int:
        """FINs taken here that completed a close (the peer had closed: the removal timer
        pushed through ``run``'s ``closed``), since construction."""
        ...

    @property
    def resets(self) -> int:
        """RSTs taken here (an endpoint partial or established resetting an open flow: the
        removal timer pushed through ``run``'s ``closed``), since construction."""
        ...

    @property
    def first_datas(self) -> int:
        """Payloads taken here that were their direction's first (history letter ``D``/
        ``d``, e.g. a TLS hello), since construction."""
        ...

    @property
    def deeps(self) -> int:
        """Payloads counted here and handed over for the deep parsers' step only
        (:attr:`FastStatus.DEEP`: UDP, and TCP in order with the history letter ``D``/``d``
        set), since construction."""
        ...

    @property
    def deep_tcp(self) -> int:
        """Of :attr:`deeps`, the TCP segments, since construction."""
        ...

    @property
    def starts(self) -> int:
        """New flows made here (``run``'s ``new_flows``: :attr:`FastStatus.STARTED`), since
        construction."""
        ...

    @property
    def syn_acks(self) -> int:
        """SYN-ACKs taken here, each answering its flow's SYN (history letter ``h``, both
        ends established), since construction."""
        ...

    def run(
        self,
        flows: dict[tuple[Any, ...], Any],
        buf: Buffer,
        start: int,
        end: int,
        little: bool,
        tick: float,
        next_sweep: float,
        limit: int,
        closed: Callable[[Any, float], float] | None = None,
        deep: bool = False,
        new_flows: tuple[Any, ...] | None = None,
        /,
    ) -> tuple[int, int, int, int, int, Handed | None]:
        """(next offset, packets done, their wire bytes, empty records, status, the packet
        handed back or None). ``closed``: the flow table's ``closed_at(flow, ts)``, which
        schedules a closed connection's removal and returns the next sweep; C calls it for
        a FIN that completes a close or a RST and applies that segment itself (None: such
        segments are handed back). ``deep``: a packet whose only reason to go to Python is
        that the deep parsers want its payload (UDP; TCP the fast branch would take, its
        history letter ``D``/``d`` set) is counted in C as the fast branch counts it and
        returned as :attr:`FastStatus.DEEP` with a :data:`DeepPayload` (not counted in
        ``packets done``); false: handed back as :attr:`FastStatus.COND`. ``new_flows``: the
        flow table's ``core_new_flows()``: a TCP originator's bare SYN or a UDP datagram of
        no flow is made a new flow in C as ``FlowTable.first_packet`` makes it (registered
        in the table, its first packet counted) and returned as :attr:`FastStatus.STARTED`
        with a :data:`DeepPayload` (not counted in ``packets done``): Python then runs
        ``on_start`` and the deep parsers' step (None: handed back as
        :attr:`FastStatus.NEW`)."""
        ...

    def reasons(self) -> tuple[int, ...]:
        """How many calls returned with each :class:`FastStatus` (index: the status)."""
        ...

    def conds(self) -> tuple[int, ...]:
        """How many packets were handed back as :attr:`FastStatus.COND`, by
        :class:`CondReason` (index: the reason)."""
        ...


class CoreRecord(NamedTuple):
    """One packet as the compiled core gives it (layout of ``nw_record`` in _core.c)."""

    frame_off: int
    sec: int
    frac: int
    caplen: int
    wirelen: int
    ip_len: int
    seq: int
    ack: int
    payload_off: int
    payload_len: int
    sport: int
    dport: int
    win: int
    vlan: int
    kind: int
    proto: int
    tcp_flags: int
    src: bytes
    dst: bytes


RECORD = struct.Struct("=QIIIIIIIIIHHHhBBBx16s16s")


@dataclass(frozen=True, slots=True)
class Batch:
    """One :func:`walk_pcap` call's result; iterating it gives its :class:`CoreRecord`."""

    records: bytearray  # RECORD.size bytes per packet
    next: int  # offset where the walk stopped
    status: Status
    empty: int  # records with no captured bytes, skipped

    def __iter__(self) -> Iterator[CoreRecord]:
        """The packets of the batch (tests and tools; the hot path reads the bytes)."""
        return (CoreRecord._make(fields) for fields in RECORD.iter_unpack(self.records))


def use_core_loop() -> bool:
    """True when the pipeline's fused loop runs with its fast branch in C
    (:mod:`netwatch.corefeed`): the default whenever the compiled core is loaded;
    ``NETWATCH_CORE=python`` selects the pure-Python fused loop (:mod:`netwatch.fastloop`)
    with the core loaded all the same."""
    return _CORE is not None and os.environ.get("NETWATCH_CORE") != "python"


def available() -> bool:
    """True when the compiled core is loaded (and not disabled by NETWATCH_PURE=1)."""
    return _CORE is not None


def walk_pcap(
    buf: Buffer, start: int, end: int, *, little: bool, ethernet: bool, limit: int
) -> Batch:
    """Walk and decode the pcap records of ``buf[start:end]`` (at most ``limit``) in C;
    ``RuntimeError`` when the compiled core is not loaded (check :func:`available`)."""
    if _CORE is None:
        raise RuntimeError(f"the compiled core is not loaded ({_WHY_PURE})")
    records, nxt, status, empty = _CORE.walk_pcap(buf, start, end, little, ethernet, limit)
    return Batch(records, nxt, Status(status), empty)


def flow_bases() -> tuple[type, type] | None:
    """The C bases of :class:`netwatch.flow.table.Flow` and
    :class:`netwatch.flow.tcpstate.Endpoint` (``FlowBase``, ``EndpointBase``: their
    attributes, the fast loop's counters as C fields) when the compiled core is loaded, else
    None: those modules then use their pure-Python reference classes."""
    if _CORE is None:
        return None
    return _CORE.FlowBase, _CORE.EndpointBase


#: ``flow_record(flow, tcp_summary, <16 enrichment values>)``: see :func:`record_builder`.
RecordBuilder = Callable[..., dict[str, Any] | None]


def record_builder(flow_type: type, endpoint_type: type) -> RecordBuilder | None:
    """The compiled builder of an ended flow's record (``_core.flow_record``) when the core
    is loaded, else None. ``flow_type``/``endpoint_type``: the flow table's ``Flow`` and
    ``Endpoint`` (``TypeError`` unless plain subclasses of :func:`flow_bases`); the builder
    takes flows and endpoints of exactly those types. It takes the flow, a TCP flow's
    ``transport_summary`` or None (then worked out in C as ``Endpoint.size`` and
    ``conn_state`` do) and the 16 enrichment values in the record's order (service,
    local_orig, local_resp, resp_cc, resp_asn, resp_org, orig_cc, resp_name, orig_device,
    resp_device, vendor, server_name, http_host, user_agent, server, dns_query), and gives
    the record :func:`netwatch.flow.record.reference_record` would build, or None for a
    flow not of the flow table's types and shape (the reference builder takes it)."""
    if _CORE is None:
        return None
    _CORE.record_types(flow_type, endpoint_type)
    build: RecordBuilder = _CORE.flow_record
    return build


def plain_record_check() -> Callable[[object], int | None] | None:
    """The compiled form of the flow log's per-record check (``_core.json_plain``) when the
    core is loaded, else None: see :func:`netwatch.output.flowlog.encode_line`."""
    if _CORE is None:
        return None
    check: Callable[[object], int | None] = _CORE.json_plain
    return check


def slot_state(obj: object, names: tuple[str, ...]) -> tuple[None, dict[str, Any]]:
    """What pickle and copy take from a ``__slots__`` object (``object.__getstate__``'s
    ``(None, {name: value})``, the names that are set): the C-backed ``Flow`` and
    ``Endpoint`` give it under their reference classes' slot names."""
    missing = object()
    state = {name: getattr(obj, name, missing) for name in names}
    return None, {name: value for name, value in state.items() if value is not missing}


def fast_loop(flow_type: type, endpoint_type: type) -> FastLoop:
    """The compiled fast branch over ``flow_type``/``endpoint_type`` (``Flow`` and
    ``Endpoint``; ``TypeError`` unless they are plain subclasses of :func:`flow_bases`);
    ``RuntimeError`` when the compiled core is not loaded."""
    if _CORE is None:
        raise RuntimeError(f"the compiled core is not loaded ({_WHY_PURE})")
    loop: FastLoop = _CORE.FastLoop(flow_type, endpoint_type)
    return loop


def as_decoded(rec: CoreRecord, frame: bytes) -> Decoded | None:
    """The :data:`Decoded` tuple of a common-shape record (``frame``: its captured bytes),
    or None for an odd one."""
    if rec.kind == Kind.ODD:
        return None
    n = 4 if rec.kind == Kind.IPV4 else 16
    return (
        rec.src[:n],
        rec.dst[:n],
        rec.proto,
        rec.sport,
        rec.dport,
        rec.ip_len,
        rec.tcp_flags,
        rec.seq,
        rec.ack,
        rec.win,
        rec.payload_off,
        rec.payload_len,
        frame,
        0,
        rec.vlan,
    )
