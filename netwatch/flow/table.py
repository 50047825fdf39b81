"""The bidirectional flow table: per-packet counters, timeouts and bounded memory.

:meth:`FlowTable.packet` is on the fast path: it orders the 5-tuple once so both directions
share one key, updates the flow's counters (packets and IP bytes per direction, payload
bytes, TCP state via :mod:`netwatch.flow.tcpstate`) and hands the first payload packets of
each direction to the injected ``inspect`` callback (the deep parsers). No per-packet
objects are created besides what the decoder produced.

Zeek ``conn.log`` semantics: the originator is the sender of the first packet, unless that
packet is not a TCP SYN and its ports say the sender is the server (Zeek's
``likely_server_ports`` rule, :func:`netwatch.flow.ports.flip_first`, decided once when the
flow is created); that flips the roles and records ``^`` in ``history`` (for UDP too). A
connection that began with a lone SYN-ACK is flipped when an ACK or data follows (Zeek 5.1
and later), and a SYN-ACK seen before its SYN is flipped when the SYN comes; a flip swaps
the case of the letters so far and puts ``^`` first, as Zeek does. ICMP flows carry the
counterpart type (echo 8 -> 0, neighbour solicitation 135 -> 136...) or else the code as
``resp_p``.

A TCP flow's ``duration`` ends at the packet with which both ends had sent a FIN or RST
(``Flow.stop``); later packets are still counted (and still move ``last``). A SYN on a
5-tuple whose connection either side closed or reset, or a SYN with another initial
sequence number, ends the old flow and starts a new one (Zeek's connection reuse). Flows
end on idle timeout (per protocol); a fixed delay after a TCP close or reset
(``tcp_closed_s``; later packets do not postpone it); an unanswered SYN after
``tcp_attempt_s`` (checked at the periodic sweeps, every ``sweep_interval_s``); a FIN that
was an endpoint's first segment after ``tcp_partial_close_s`` unless the other side closes
too; a DNS flow (UDP 53, 137, 5353, 5355) idle about ``dns_idle_s`` (checked every
``dns_idle_s`` from its start, with Zeek's one second of slack); on an active timeout, on
eviction or at end of input. Each ending is passed to the injected ``on_end`` callback with
a reason (a reused 5-tuple ends with ``tcp_closed``). Timers run when due (the next sweep is
set to the earliest one), not only at the periodic sweeps. The active timeout is checked
whenever a busy flow's idle timer comes due,
so it is enforced with the granularity of the protocol's idle timeout (e.g. 60 s for UDP).

Config read: ``flows.*`` (max_flows, per-protocol idle timeouts, tcp_closed_s,
tcp_attempt_s, tcp_partial_close_s, dns_idle_s, active_timeout_s) and
``deep.max_payload_packets``. Memory is bounded by ``max_flows``: when full, the flow idle
the longest is ended with reason ``evicted`` (counted), so a scan or a flood cannot exhaust
memory; the timer heaps hold at most a few entries per flow. Evidence frames are kept by the
pipeline, not here: ``Flow.keep`` and ``Flow.ev`` are their per-flow state
(:mod:`netwatch.alerts.evidence`). Timers run on
packet time, so replays behave like live capture.
"""

from __future__ import annotations

import heapq
import itertools
import operator
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from heapq import heappush
from typing import TYPE_CHECKING, Any

from netwatch import core
from netwatch.decode.frames import FRAGMENT, Decoded
from netwatch.flow.ids import UidSource, icmp_counterpart
from netwatch.flow.ports import LIKELY_SERVER_TCP, LIKELY_SERVER_UDP, flip_first
from netwatch.flow.tcpstate import (
    ACK,
    ORIG_LETTERS,
    RESP_LETTERS,
    SYN,
    Endpoint,
    PyEndpoint,
    TcpState,
    closed_both,
    establish,
    establish_both,
    is_closed,
    is_reuse,
    syn_reversal,
    tcp_packet,
)

if TYPE_CHECKING:
    from netwatch.alerts.evidence import FlowEvidence

PROTO_TCP = 6
PROTO_UDP = 17
_ICMP_PROTOS = frozenset({1, 58})
_SYN_ACK = 0x12
#: SYN, FIN, RST and ACK: a first segment with only SYN of these is a bare SYN
_SYN_ONLY_MASK = 0x17
_BIT_S = 1  # the history bit of 'S' (tcpstate)
_MASK = 0xFFFFFFFF
_CLOSED = TcpState.CLOSED.value
_INACTIVE = TcpState.INACTIVE.value
_RESET = TcpState.RESET.value
_SYN_SENT = TcpState.SYN_SENT.value
_SYN_ACK_SENT = TcpState.SYN_ACK_SENT.value
#: UDP ports Zeek's DNS analyzer is attached to (base/protocols/dns: DNS, NetBIOS name
#: service, mDNS, LLMNR); its flows end on ``dns_idle_s`` instead of the UDP idle timeout.
DNS_UDP_PORTS = frozenset({53, 137, 5353, 5355})


class Check(IntEnum):
    """One-off checks scheduled per flow (Zeek's connection timers)."""

    ATTEMPT = 0  # a SYN nobody answered: end the attempt (tcp_attempt_delay)
    PARTIAL_CLOSE = 1  # a FIN was an endpoint's first segment (tcp_partial_close_delay)
    DNS = 2  # a DNS flow idle long enough (dns_session_timeout, checked periodically)


class EndReason(StrEnum):
    """Why a flow ended (metrics label values)."""

    IDLE = "idle_timeout"
    TCP_CLOSED = "tcp_closed"
    ACTIVE = "active_timeout"
    EVICTED = "evicted"
    END_OF_INPUT = "end_of_input"


@dataclass(frozen=True, slots=True)
class FlowSettings:
    """Flow-table limits and timeouts (seconds of packet time)."""

    max_flows: int = 1_000_000
    tcp_idle_s: float = 300.0
    udp_idle_s: float = 60.0
    icmp_idle_s: float = 60.0
    other_idle_s: float = 60.0
    tcp_closed_s: float = 5.0
    tcp_attempt_s: float = 5.0
    tcp_partial_close_s: float = 3.0
    dns_idle_s: float = 10.0
    active_timeout_s: float = 3600.0
    max_payload_packets: int = 8
    sweep_interval_s: float = 1.0


class Flow:
    """One bidirectional flow. Attribute names follow Zeek's conn.log where they can."""

    __slots__ = (
        "app",
        "deep_o",
        "deep_r",
        "ev",
        "first",
        "hist",
        "keep",
        "key",
        "last",
        "name",
        "o_bytes",
        "o_ipb",
        "o_pkts",
        "odir",
        "orig_h",
        "orig_mac",
        "orig_p",
        "proto",
        "r_bytes",
        "r_ipb",
        "r_pkts",
        "resp_h",
        "resp_mac",
        "resp_p",
        "state",
        "stop",
        "tcp",
        "uid",
        "vlan",
    )

    def __init__(self, key: tuple[Any, ...], uid: str, ts: float, proto: int) -> None:
        self.key = key
        self.uid = uid
        self.first = ts
        self.last = ts
        self.proto = proto
        self.o_pkts = 0
        self.o_ipb = 0
        self.o_bytes = 0  # payload bytes of UDP, ICMP and other protocols (TCP: tcpstate)
        self.r_pkts = 0
        self.r_ipb = 0
        self.r_bytes = 0
        self.tcp: tuple[Endpoint, Endpoint] | None = None
        self.hist: list[str] | None = None
        self.state = 0  # 0 open, 1 closed (TCP), 2 ended
        self.stop = -1.0  # TCP: when both ends had closed (-1: not yet); ``duration`` ends there
        self.app: dict[str, Any] | None = None  # deep-parser results, allocated on demand
        self.name: str | None = None  # DNS name of the responder known at flow start
        self.odir = True
        self.orig_h = b""
        self.resp_h = b""
        self.orig_p = 0
        self.resp_p = 0
        self.orig_mac: bytes | None = None
        self.resp_mac: bytes | None = None
        self.vlan = -1
        self.deep_o = 0
        self.deep_r = 0
        self.keep = 0  # frames still to keep as evidence (netwatch.alerts.evidence)
        self.ev: FlowEvidence | None = None  # the frames kept, while the flow may alert

    @property
    def duration(self) -> float:
        """Seconds between the first packet and the last (for TCP: the last before both
        ends had closed, as Zeek's)."""
        return (self.stop if self.stop >= 0 else self.last) - self.first

    def app_set(self, field: str, value: Any) -> None:
        """Record a deep-parser result on the flow (first value wins)."""
        if self.app is None:
            self.app = {}
        self.app.setdefault(field, value)


#: The pure-Python reference :class:`Flow`: the one in use without the compiled core, and
#: what the C-backed one is tested against (``tests/test_core.py``).
PyFlow = Flow

if not TYPE_CHECKING and (_BASES := core.flow_bases()) is not None:

    class Flow(_BASES[0]):
        """One bidirectional flow: :class:`PyFlow`'s attributes held by the compiled core
        (``netwatch._core.FlowBase``: the counters the fast loop writes are C fields that
        read back as the int or float stored), with its methods."""

        __slots__ = ()
        duration = PyFlow.duration
        app_set = PyFlow.app_set

        def __getstate__(self) -> tuple[None, dict[str, Any]]:
            return core.slot_state(self, PyFlow.__slots__)


#: The C-backed :class:`Flow` (None on the pure path): ``Flow(key, uid, ts, proto, odir,
#: orig_h, resp_h, orig_p, resp_p, frame, mac_off, vlan, budget)`` makes a new flow in one
#: call, what :meth:`FlowTable._new` otherwise writes attribute by attribute
#: (``tests/test_core.py`` compares).
_C_FLOW: Callable[..., Flow] | None = None if Flow is PyFlow else Flow

#: The C-backed :class:`Endpoint` (None on the pure path): ``Endpoint(letters, seq)`` is an
#: originator after its bare SYN, what :meth:`FlowTable._tcp_first` otherwise writes.
_C_ENDPOINT: Callable[..., Endpoint] | None = None if Endpoint is PyEndpoint else Endpoint
_ATTEMPT = Check.ATTEMPT
#: a TCP or UDP flow is flipped by its ports only when its source port is one of these
_MAYBE_SERVER = LIKELY_SERVER_TCP | LIKELY_SERVER_UDP

_by_first = operator.attrgetter("first")  # flush's order: oldest first


def _port_roles() -> bytes:
    """One byte per port (65,536) for the compiled core's new flows: bit 0 a likely server
    TCP port, bit 1 a likely server UDP port (Zeek's rule, :func:`flip_first`), bit 2 a DNS
    port (:data:`DNS_UDP_PORTS`, the DNS check)."""
    roles = bytearray(65536)
    for bit, ports in enumerate((LIKELY_SERVER_TCP, LIKELY_SERVER_UDP, DNS_UDP_PORTS)):
        for port in ports:
            roles[port] |= 1 << bit
    return bytes(roles)


_PORT_ROLES = _port_roles()

OnEnd = Callable[[Flow, EndReason], None]
Inspect = Callable[[Flow, bool, bytes, int, int, float], None]
OnStart = Callable[[Flow, float], None]


def _noop_inspect(flow: Flow, is_orig: bool, frame: bytes, off: int, n: int, ts: float) -> None:
    return None


class FlowTable:
    """Bidirectional flows keyed on the ordered 5-tuple, with timers on packet time."""

    def __init__(
        self,
        settings: FlowSettings,
        on_end: OnEnd,
        *,
        inspect: Inspect = _noop_inspect,
        on_start: OnStart | None = None,
        on_sweep: Callable[[float], None] | None = None,
        uids: UidSource | None = None,
    ) -> None:
        self.settings = settings
        self._max_flows = settings.max_flows  # read per new flow (the settings are frozen)
        self._budget = settings.max_payload_packets
        self.flows: dict[tuple[Any, ...], Flow] = {}
        self._on_end = on_end
        self._inspect = inspect
        self._on_start = on_start
        self._on_sweep = on_sweep
        self._uids = uids or UidSource()
        self._uid = self._uids.next
        # the one-call constructor, unless the module's Flow is not the C one (tests set the
        # reference class there)
        self._whole_new: Callable[..., Flow] | None = _C_FLOW if Flow is _C_FLOW else None
        self._syn_end: Callable[..., Endpoint] | None = (
            _C_ENDPOINT if Endpoint is _C_ENDPOINT else None
        )
        self._attempt_s = settings.tcp_attempt_s
        self._idle = {
            PROTO_TCP: settings.tcp_idle_s,
            PROTO_UDP: settings.udp_idle_s,
            1: settings.icmp_idle_s,
            58: settings.icmp_idle_s,
        }
        # One heap per timeout class: entries (time, tiebreak, flow); stale entries are
        # re-queued lazily when popped, so the fast path never touches a heap.
        self._heaps: dict[float, list[tuple[float, int, Flow]]] = {}
        # each protocol's idle timeout and heap, once one of its flows was created
        self._idle_heap: dict[int, tuple[float, list[tuple[float, int, Flow]]]] = {}
        self._closed: list[tuple[float, int, Flow]] = []
        self._checks: list[tuple[float, int, Flow, Check]] = []
        # unanswered SYNs: checked at the sweeps (not each one a wake-up of its own: most
        # SYNs are answered long before, and the attempt delay is not timed to the packet)
        self._attempts: list[tuple[float, int, Flow, Check]] = []
        self._tie = itertools.count()
        self.next_sweep = float("-inf")
        self._next_periodic = float("-inf")
        self.ended: dict[str, int] = {r.value: 0 for r in EndReason}
        self.created = 0
        self.packets = 0

    def __len__(self) -> int:
        return len(self.flows)

    @property
    def on_start(self) -> OnStart | None:
        """The ``on_start`` callback (called with a new flow and its first packet's time,
        once that packet is counted: counters, TCP endpoints and history, timers; before its
        payload goes to the deep parsers)."""
        return self._on_start

    def core_new_flows(self) -> tuple[Any, ...] | None:
        """What the compiled fast loop needs to make a TCP or UDP flow itself as
        :meth:`first_packet` makes it (``FastLoop.run``'s ``new_flows``; None when the
        table does not make C flows and endpoints: then C hands every new flow back): the
        table (its ``created`` and ``next_sweep`` are written), its Flow and Endpoint
        types, the uid source, the tiebreak counter, ``heapq.heappush``, the per-protocol
        (idle timeout, heap) cache, the check and attempt heaps with their kinds and
        delays, the table's size limit, the payload budget, the endpoints' letters, the
        ports' roles (:func:`_port_roles`) and the dict of flows (``run``'s must be it). C
        reads them at each call and hands a new flow back when one is not of the type it
        expects (a protocol's first flow, whose idle heap is not cached yet, included)."""
        if self._whole_new is None or self._syn_end is None:
            return None
        return (
            self,
            self._whole_new,
            self._syn_end,
            self._uid,
            self._tie,
            heappush,
            self._idle_heap,
            self._checks,
            Check.DNS,
            self.settings.dns_idle_s,
            self._attempts,
            _ATTEMPT,
            self._attempt_s,
            self._max_flows,
            self._budget,
            ORIG_LETTERS,
            RESP_LETTERS,
            _PORT_ROLES,
            self.flows,
        )

    # -- fast path ------------------------------------------------------------------------

    def packet(self, ts: float, d: Decoded) -> Flow:
        """Account one decoded packet (timers due at its time run first, as in Zeek); returns
        its flow (the pipeline keeps its first frames as evidence while ``keep`` > 0)."""
        if ts >= self.next_sweep:
            self.sweep(ts)
        src, dst, proto, sport, dport, ip_len, flags, seq, ack, win, off, plen, frame, _m, _v = d
        if proto in _ICMP_PROTOS:  # Zeek's key: (type, counterpart type), one-way: (type, code)
            ksp = sport
            peer = icmp_counterpart(proto, sport)
            kdp = dport if peer is None else peer
        else:
            ksp, kdp = sport, dport
        if src < dst or (src == dst and ksp <= kdp):
            fwd = True
            key = (src, dst, ksp, kdp, proto)
        else:
            fwd = False
            key = (dst, src, kdp, ksp, proto)
        f = self.flows.get(key)
        reversal = False
        started = f is None  # on_start once the first packet is counted
        if f is None:
            f = self._new(key, ts, d, fwd)
        else:
            if proto == PROTO_TCP and flags != FRAGMENT and f.tcp is not None:
                orig, resp = f.tcp
                if flags & SYN:
                    if is_reuse(orig, resp, flags, seq):
                        self._end(f, EndReason.TCP_CLOSED)  # a new connection, same 5-tuple
                        f = self._new(key, ts, d, fwd)
                        started = True
                    elif flags & _SYN_ACK == SYN and fwd is not f.odir and syn_reversal(orig, resp):
                        self._flip_tcp(f)  # the SYN-ACK was seen before its SYN
                        reversal = True
                elif orig.state == _SYN_ACK_SENT and (flags & ACK or plen) and not resp.state:
                    # an ACK or data after a lone SYN-ACK (after_lone_syn_ack): Zeek flips
                    self._flip_tcp(f)
                    establish(orig)
            f.last = max(f.last, ts)
        if fwd is f.odir:
            f.o_pkts += 1
            f.o_ipb += ip_len
            is_orig = True
        else:
            f.r_pkts += 1
            f.r_ipb += ip_len
            is_orig = False
        if proto != PROTO_TCP:  # TCP payload is counted in sequence space (tcpstate)
            if is_orig:
                f.o_bytes += plen
            else:
                f.r_bytes += plen
        elif flags != FRAGMENT:
            whole = len(frame) >= off + plen
            tcp = f.tcp
            if tcp is None:
                self._tcp_first(f, is_orig, flags, seq, ack, win, plen, whole, ts)
            else:
                # a FIN's first time (the partial-close check): known before tcp_packet
                first_fin = bool(flags & 0x01) and (tcp[0] if is_orig else tcp[1]).fin < 0
                if is_orig:
                    tcp_packet(tcp[0], tcp[1], flags, seq, ack, win, plen, whole, f.hist)  # type: ignore[arg-type]
                else:
                    tcp_packet(tcp[1], tcp[0], flags, seq, ack, win, plen, whole, f.hist)  # type: ignore[arg-type]
                if reversal:
                    establish_both(tcp[0], tcp[1])
                if flags & 0x05:
                    self._closing(f, is_orig, ts, first_fin)
        if started and self._on_start is not None:
            self._on_start(f, ts)
        if plen > 0 and off >= 0:
            self.deep(f, is_orig, frame, off, plen, ts)
        return f

    def first_packet(self, ts: float, d: Decoded) -> Flow:
        """:meth:`packet` for a packet known to start a flow: the compiled core's ``NEW``
        hand-back (it found no flow with the packet's key in :attr:`flows` and the packet is
        before :attr:`next_sweep`), so the key is not looked up, and the flow is made here
        (:meth:`_new` for TCP and UDP, inlined, with the one-call constructor). The same
        effect as :meth:`packet` (``tests/flow/test_table.py`` compares the tables after
        each); anything but TCP or UDP, a fragment, or a table without the C ``Flow`` goes
        through :meth:`packet`. The reference for the flows the compiled core makes itself
        (:meth:`core_new_flows`), and what makes those it hands back."""
        src, dst, proto, sport, dport, ip_len, flags, seq, ack, win, off, plen, frame, mo, vl = d
        whole = self._whole_new
        if (proto != PROTO_TCP and proto != PROTO_UDP) or flags == FRAGMENT or whole is None:  # noqa: PLR1714
            return self.packet(ts, d)
        if ts >= self.next_sweep:
            self.sweep(ts)
        if src < dst or (src == dst and sport <= dport):
            fwd = True
            key = (src, dst, sport, dport, proto)
        else:
            fwd = False
            key = (dst, src, dport, sport, proto)
        # _new for a TCP or UDP packet that is not a fragment
        if len(self.flows) >= self._max_flows:
            self._evict_one()
        f = whole(
            key, self._uid(), ts, proto, fwd, src, dst, sport, dport, frame, mo, vl, self._budget
        )
        if sport in _MAYBE_SERVER and flip_first(proto, sport, dport, flags, dst):
            self._flip(f)  # no packet counted yet: only the ends and '^'
        self._register(key, f, proto, ts)
        # a new flow's counters are 0: the first packet's values are written as they are
        is_orig = fwd is f.odir
        if is_orig:
            f.o_pkts = 1
            f.o_ipb = ip_len
        else:
            f.r_pkts = 1
            f.r_ipb = ip_len
        if proto == PROTO_TCP:
            self._tcp_first(f, is_orig, flags, seq, ack, win, plen, len(frame) >= off + plen, ts)
        elif is_orig:
            f.o_bytes = plen
        else:
            f.r_bytes = plen
        if self._on_start is not None:
            self._on_start(f, ts)
        if plen > 0 and off >= 0:
            self.deep(f, is_orig, frame, off, plen, ts)
        return f

    def inspect_only(self, ts: float, d: Decoded) -> None:
        """Hand a payload to the deep parsers without counting it: a datagram rebuilt from
        fragments whose packets were already counted. Uses the direction's budget; a flow
        that has ended meanwhile is not recreated."""
        src, dst, proto, sport, dport, _l, _f, _s, _a, _w, off, plen, frame, _m, _v = d
        if src < dst or (src == dst and sport <= dport):
            fwd, key = True, (src, dst, sport, dport, proto)
        else:
            fwd, key = False, (dst, src, dport, sport, proto)
        f = self.flows.get(key)
        if f is None or plen <= 0:
            return
        self.deep(f, fwd is f.odir, frame, off, plen, ts)

    def deep(self, f: Flow, is_orig: bool, frame: bytes, off: int, plen: int, ts: float) -> None:
        """A payload to the deep parsers while its direction's budget lasts (each payload
        handed over spends one of the budget): :meth:`packet`'s last step, and all that
        :func:`netwatch.corefeed.run_core` runs for a payload the compiled core counted
        itself (``FastStatus.DEEP``)."""
        if is_orig:
            if f.deep_o > 0:
                f.deep_o -= 1
                self._inspect(f, True, frame, off, plen, ts)
        elif f.deep_r > 0:
            f.deep_r -= 1
            self._inspect(f, False, frame, off, plen, ts)

    def _tcp_first(
        self,
        f: Flow,
        is_orig: bool,
        flags: int,
        seq: int,
        ack: int,
        win: int,
        plen: int,
        whole: bool,
        ts: float,
    ) -> None:
        """The flow's first TCP segment: create the endpoints; an originator's SYN starts
        the attempt timer."""
        if is_orig and flags & _SYN_ONLY_MASK == SYN and not plen and win:
            # the common first segment, an originator's bare SYN: what tcp_packet does to
            # two fresh endpoints, written directly (tests/flow/test_table.py compares)
            syn_end = self._syn_end
            if syn_end is not None:  # the C Endpoint's one-call form writes the same
                f.tcp = (syn_end(ORIG_LETTERS, seq), syn_end(RESP_LETTERS))
            else:
                o = Endpoint(ORIG_LETTERS)
                f.tcp = (o, Endpoint(RESP_LETTERS))
                o.bits = _BIT_S
                o.last_ctl = [seq, -1, -1]
                o.base = o.seqmax = o.deliv = seq + 1
                o.state = _SYN_SENT
                o.dack = (seq + 1) & _MASK
            hist = f.hist
            if hist is None:  # not flipped by the ports when the flow was created
                f.hist = ["S"]
            else:
                hist.append("S")
            heappush(self._attempts, (ts + self._attempt_s, next(self._tie), f, _ATTEMPT))
            return
        tcp = f.tcp = (Endpoint(ORIG_LETTERS), Endpoint(RESP_LETTERS))
        hist = f.hist
        if hist is None:  # not flipped by the ports when the flow was created
            hist = f.hist = []
        if is_orig:
            tcp_packet(tcp[0], tcp[1], flags, seq, ack, win, plen, whole, hist)
        else:
            tcp_packet(tcp[1], tcp[0], flags, seq, ack, win, plen, whole, hist)
        if is_orig and flags & SYN and tcp[0].state in (_SYN_SENT, _SYN_ACK_SENT):
            heapq.heappush(
                self._attempts,
                (ts + self.settings.tcp_attempt_s, next(self._tie), f, Check.ATTEMPT),
            )
        if flags & 0x05:
            self._closing(f, is_orig, ts, True)

    def _closing(self, f: Flow, is_orig: bool, ts: float, first_fin: bool) -> None:
        """After a FIN or RST: stop the clock once both ends closed, schedule the removal
        once the close is complete (Zeek's close delay), or a partial-close check."""
        tcp = f.tcp
        assert tcp is not None
        orig, resp = tcp
        if f.stop < 0 and closed_both(orig, resp):
            f.stop = f.last  # this packet's time: Zeek's clock stops after it
        if f.state != 0:
            return
        if is_closed(orig, resp):
            self.closed_at(f, ts)
            return
        sender = orig if is_orig else resp
        if first_fin and sender.state == _CLOSED and sender.prev == _INACTIVE:
            self._check(ts + self.settings.tcp_partial_close_s, f, Check.PARTIAL_CLOSE)

    def closed_at(self, f: Flow, ts: float) -> float:
        """A connection closed at ``ts`` (:meth:`_closing`, once ``is_closed``): the flow is
        marked closed and its removal scheduled after Zeek's close delay; returns the next
        sweep. The compiled fast loop calls it for a FIN that completes a close or a RST, which
        it applies itself (``netwatch.corefeed``)."""
        f.state = 1
        heapq.heappush(self._closed, (ts, next(self._tie), f))
        due = ts + self.settings.tcp_closed_s
        if due < self.next_sweep:  # noqa: PLR1730 (cheaper than min() here)
            self.next_sweep = due
        return self.next_sweep

    def _check(self, when: float, f: Flow, kind: Check) -> None:
        heapq.heappush(self._checks, (when, next(self._tie), f, kind))
        if when < self.next_sweep:  # noqa: PLR1730 (cheaper than min() here)
            self.next_sweep = when

    def _flip_tcp(self, f: Flow) -> None:
        """Swap the roles of a TCP flow under way: counters, ends and endpoints."""
        self._flip(f)
        assert f.tcp is not None
        orig, resp = f.tcp
        f.tcp = (resp, orig)
        resp.letters, orig.letters = ORIG_LETTERS, RESP_LETTERS

    def _flip(self, f: Flow) -> None:
        """The first packet's sender is the responder (Zeek's '^'): swap the two ends."""
        f.odir = not f.odir
        f.orig_h, f.resp_h = f.resp_h, f.orig_h
        f.orig_p, f.resp_p = f.resp_p, f.orig_p
        f.orig_mac, f.resp_mac = f.resp_mac, f.orig_mac
        f.o_pkts, f.r_pkts = f.r_pkts, f.o_pkts
        f.o_ipb, f.r_ipb = f.r_ipb, f.o_ipb
        f.o_bytes, f.r_bytes = f.r_bytes, f.o_bytes
        f.deep_o, f.deep_r = f.deep_r, f.deep_o
        if f.hist is None:
            f.hist = ["^"]
        else:  # as Zeek: the letters so far change sides, '^' goes first
            f.hist[:] = ["^", *(c.swapcase() for c in f.hist)]

    def _new(self, key: tuple[Any, ...], ts: float, d: Decoded, fwd: bool) -> Flow:
        if len(self.flows) >= self._max_flows:
            self._evict_one()
        src, dst, proto, sport, dport, _l, flags, _s, _a, _w, _o, _p, frame, mac_off, vlan = d
        whole = self._whole_new
        if whole is not None:
            f = whole(
                key, self._uid(), ts, proto, fwd, src, dst, sport, dport, frame, mac_off, vlan,
                self._budget,
            )  # fmt: skip
        else:
            f = Flow(key, self._uid(), ts, proto)
            f.odir = fwd
            f.orig_h, f.resp_h, f.orig_p, f.resp_p = src, dst, sport, dport
            if mac_off >= 0:
                f.resp_mac = frame[mac_off : mac_off + 6]
                f.orig_mac = frame[mac_off + 6 : mac_off + 12]
            f.vlan = vlan
            f.deep_o = f.deep_r = self._budget
        if proto in _ICMP_PROTOS:  # Zeek: the counterpart type, or the code for one-way types
            peer = icmp_counterpart(proto, sport)
            f.resp_p = dport if peer is None else peer
        elif flags != FRAGMENT and flip_first(proto, sport, dport, flags, dst):
            self._flip(f)  # no packet counted yet: only the ends and '^'
        self._register(key, f, proto, ts)
        return f

    def _register(self, key: tuple[Any, ...], f: Flow, proto: int, ts: float) -> None:
        """A new flow into the table: its DNS check, its place in the dict and on its idle
        heap, the next sweep (:meth:`_new` and :meth:`first_packet`; their callers call
        ``on_start`` once the first packet is counted)."""
        if proto == PROTO_UDP and f.resp_p in DNS_UDP_PORTS:
            self._check(ts + self.settings.dns_idle_s, f, Check.DNS)
        self.flows[key] = f
        self.created += 1
        idle_heap = self._idle_heap.get(proto)
        if idle_heap is None:
            idle_heap = self._idle_heap_of(proto)
        idle, heap = idle_heap
        heappush(heap, (ts, next(self._tie), f))
        if ts + idle < self.next_sweep:  # noqa: PLR1730 (cheaper than min() here)
            self.next_sweep = ts + idle

    def _idle_heap_of(self, proto: int) -> tuple[float, list[tuple[float, int, Flow]]]:
        """The protocol's idle timeout and the heap of its class, cached (a protocol's first
        flow since the table was made or flushed)."""
        idle = self._idle.get(proto, self.settings.other_idle_s)
        heap = self._heaps.get(idle)
        if heap is None:
            heap = self._heaps[idle] = []
        idle_heap = self._idle_heap[proto] = (idle, heap)
        return idle_heap

    # -- timers ---------------------------------------------------------------------------

    def sweep(self, now: float) -> None:
        """End every flow whose idle, close-linger or active timeout has passed at ``now``.
        The next sweep is due at the next timer (so a packet after a timer's time finds
        the flow ended, as in Zeek) or after ``sweep_interval_s``; the ``on_sweep``
        callback runs at that interval only."""
        periodic = now >= self._next_periodic
        if periodic:
            self._next_periodic = now + self.settings.sweep_interval_s
        self._timers(now)
        if periodic and self._on_sweep is not None:
            self._on_sweep(now)
        self.next_sweep = min(self._next_periodic, self._next_due())

    @property
    def swept_at(self) -> float:
        """Packet time of the last periodic sweep (within ``sweep_interval_s`` of the
        packets being read; -inf before the first): what a progress display shows."""
        return self._next_periodic - self.settings.sweep_interval_s

    def sweep_timers(self, now: float) -> float:
        """The fused loop's sweep: run the timers due at ``now`` and return when the next
        sweep is due; when the periodic sweep is due too, do nothing and return ``now``
        (the caller leaves the packet to the general path, which sweeps)."""
        if now >= self._next_periodic:
            return now
        self._timers(now)
        self.next_sweep = min(self._next_periodic, self._next_due())
        return self.next_sweep

    def _next_due(self) -> float:
        """The earliest time a timer may come due (a stale idle entry may make it early)."""
        due = float("inf")
        for idle, heap in self._heaps.items():
            if heap and heap[0][0] + idle < due:
                due = heap[0][0] + idle
        if self._closed and self._closed[0][0] + self.settings.tcp_closed_s < due:
            due = self._closed[0][0] + self.settings.tcp_closed_s
        if self._checks and self._checks[0][0] < due:
            due = self._checks[0][0]
        return due

    def _expire_idle(
        self, heap: list[tuple[float, int, Flow]], horizon: float, active_horizon: float
    ) -> None:
        """Idle timeouts; a busy flow's stale entry is re-queued, and its age checked then."""
        while heap and heap[0][0] <= horizon:
            _, _, f = heapq.heappop(heap)
            if f.state == 2:
                continue
            if f.last > horizon:
                if f.first <= active_horizon:
                    self._end(f, EndReason.ACTIVE)
                else:
                    heapq.heappush(heap, (f.last, next(self._tie), f))
                continue
            self._end(f, EndReason.IDLE)

    def _expire_closed(self, horizon: float) -> None:
        """Closed connections end a fixed delay after the close (Zeek's close delay: later
        packets do not postpone it)."""
        heap = self._closed
        while heap and heap[0][0] <= horizon:
            _, _, f = heapq.heappop(heap)
            if f.state != 2:
                self._end(f, EndReason.TCP_CLOSED)

    def _timers(self, now: float) -> None:
        """Every timer due at ``now``, in a fixed order (idle, closed, attempts, checks)."""
        for idle, heap in self._heaps.items():
            if heap and heap[0][0] <= now - idle:
                self._expire_idle(heap, now - idle, now - self.settings.active_timeout_s)
        closed = self._closed
        if closed and closed[0][0] <= now - self.settings.tcp_closed_s:
            self._expire_closed(now - self.settings.tcp_closed_s)
        for checks in (self._attempts, self._checks):
            if checks and checks[0][0] <= now:
                self._run_heap(checks, now)

    def _run_heap(self, heap: list[tuple[float, int, Flow, Check]], now: float) -> None:
        while heap and heap[0][0] <= now:
            when, _, f, kind = heapq.heappop(heap)
            if f.state == 2:
                continue
            if kind is Check.DNS:
                # Zeek allows one second for the common single request and reply.
                if when - f.last >= self.settings.dns_idle_s - 1.0:
                    self._end(f, EndReason.IDLE)
                else:
                    self._check(when + self.settings.dns_idle_s, f, Check.DNS)
                continue
            tcp = f.tcp
            if tcp is None or f.state != 0:
                continue
            orig, resp = tcp
            if kind is Check.ATTEMPT:
                if orig.state in (_SYN_SENT, _SYN_ACK_SENT) and resp.state == _INACTIVE:
                    self._end(f, EndReason.TCP_CLOSED)
            elif (
                _INACTIVE not in (orig.state, resp.state)
                and not closed_both(orig, resp)
                and _RESET not in (orig.state, resp.state)
            ):
                self._end(f, EndReason.TCP_CLOSED)

    def _evict_one(self) -> None:
        """End the flow that has been idle the longest (its heap head, after revalidation)."""
        while True:
            best: list[tuple[float, int, Flow]] | None = None
            for heap in self._heaps.values():
                while heap and (heap[0][2].state == 2 or heap[0][2].last != heap[0][0]):
                    _, _, f = heapq.heappop(heap)
                    if f.state != 2:
                        heapq.heappush(heap, (f.last, next(self._tie), f))
                if heap and (best is None or heap[0][0] < best[0][0]):
                    best = heap
            if best is None:
                return
            _, _, f = heapq.heappop(best)
            if f.state != 2:
                self._end(f, EndReason.EVICTED)
                return

    def _end(self, f: Flow, reason: EndReason) -> None:
        f.state = 2
        del self.flows[f.key]
        self.ended[reason] += 1  # a StrEnum member finds its value's key (same hash, equal)
        self._on_end(f, reason)

    def flush(self) -> None:
        """End every remaining flow (end of input or shutdown), oldest first."""
        # _end's steps, in its order, without a call per flow
        flows, ended, on_end = self.flows, self.ended, self._on_end
        reason = EndReason.END_OF_INPUT
        for f in sorted(flows.values(), key=_by_first):
            f.state = 2
            del flows[f.key]
            ended[reason] += 1
            on_end(f, reason)
        self._heaps.clear()
        self._idle_heap.clear()
        self._closed.clear()
        self._checks.clear()
        self._attempts.clear()
