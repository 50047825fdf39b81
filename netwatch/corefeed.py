"""The fused loop with its fast branch in C: C walks, decodes and counts, Python keeps the flows.

:func:`run_core` replaces :func:`netwatch.fastloop.run_mapped` for memory-mapped classic pcaps
and live blocks when the compiled core is loaded (see :func:`netwatch.core.use_core_loop`).

What C owns (``netwatch._core.FastLoop``, :func:`fast_loop`): the record walk, the
common-shape decode, the flow key and its lookup in the flow table's dict, and the fused
loop's fast branch for a packet of an existing flow (UDP, and TCP in order with its
``Endpoint.nxt``/``dack``/``seqmax``/``bits``, the ACK-gap test with its 32-bit wrap, the
"payload captured in full" test, ``Flow.last`` and the per-direction packets, IP bytes and UDP
payload bytes), written in place into the C fields of :class:`Flow` and :class:`Endpoint`
(subclasses of the core's ``FlowBase``/``EndpointBase`` whenever the core is loaded: no
object is made per packet). A packet of a flow it found before takes no dict lookup and no
key objects (its flow cache, valid while the flow is live: ``state`` 2 is set before a flow
leaves the table). Beyond the fast branch, C applies five TCP segments exactly as
``FlowTable.packet`` and :func:`netwatch.flow.tcpstate.tcp_packet` would, history letters
included: the responder's SYN-ACK answering the originator's SYN (``h``, both ends
established; no reuse or flip can apply then), a direction's first bare ACK (``A``/``a``: a
handshake's third packet), an endpoint's first FIN without payload while both ends are
partial or established (the state change to closed, ``F`` and its repeat, the FIN's
position; no timer is due then), the FIN that completes a close (the peer closed first)
and a RST without payload from a partial or established endpoint (``R`` and its repeat,
the state reset): for these two ``FlowTable._closing``'s part too, the clock stopped
(``Flow.stop``) once both ends closed or reset, and the removal scheduled through
:meth:`FlowTable.closed_at`, which C calls (the one timer C schedules, through the table's
own heap and tiebreak counter; it returns the next sweep, which C then honours), and a
direction's first payload in order (``D``/``d``, e.g. a TLS hello: delivered as
``tcp_packet`` delivers it). Other SYNs, RSTs and closes stay Python's. A payload the deep
parsers still want (``Flow.deep_o``/``deep_r`` non-zero) whose packet the fast branch would
otherwise take (UDP; TCP in order, with the fast branch's tests passed) C counts too, as
``FlowTable.packet`` would before its deep step, and returns as ``FastStatus.DEEP`` with
the flow and direction: this loop then runs only :meth:`FlowTable.deep` (the budget and
the inspector, with the frame, payload offset and length and the packet's time) and keeps
evidence as the general path would (``run``'s ``deep`` argument; without it such packets
are handed back as ``COND``). New flows (``run``'s ``new_flows``, the table's
:meth:`FlowTable.core_new_flows`): an originator's bare SYN or a UDP datagram of no flow,
before the next sweep, in a table not full, is made a flow in C exactly as
:meth:`FlowTable.first_packet` makes it (the table's uid source, the fields, Zeek's flip
for UDP from the ports' roles, the first packet's counters, for TCP the endpoints after the
SYN and ``S``; the DNS check, the dict entry, the idle-heap entry and the attempt timer
through the table's own heaps, tiebreak counter and ``heapq.heappush``, the next sweep,
``created``), and returned as ``FastStatus.STARTED`` with the flow: this loop then runs
only the table's ``on_start``, :meth:`FlowTable.deep` for a payload, and keeps evidence.
Every other first packet (other TCP first segments, a full table, a protocol's first flow)
is handed back as ``NEW``. It runs only when every value it reads has the exact type and
range the Python loop gives it; it never ends or times out a flow.

What Python owns: the flow table itself (the dict of :class:`Flow` objects, ``on_start``,
flow end, timers, the other TCP state changes and history letters, deep parsers, evidence,
records, rules). C stops at the first packet that needs any of that (an odd frame, a new
flow it does not make, a flow that keeps evidence frames, a packet at or past the next
sweep, a TCP flow without endpoints, failed fast-branch conditions, a value of an unexpected
type:
:class:`netwatch.core.FastStatus`, and for failed conditions
:class:`netwatch.core.CondReason`) and hands its record back; this loop then runs that
packet exactly as the Python fused loop would (the same fast branch in Python where C could
not decide it: at a sweep, for a flow keeping evidence frames or with a value C does not
read; else ``FlowTable.packet`` with the tuple the C decoded, which the decoder would build
too: ``tests/test_core.py``; a new flow's first packet through ``FlowTable.first_packet``,
which skips the key lookup C already made; an odd frame through ``Pipeline.account``), and
calls C again after it. Handing a packet to Python is always correct, so C hands back
whenever in doubt. ``tests/test_corefeed.py`` requires identical flow records, alerts and
evidence from this loop and the general path on every capture, and hits each hand-back
reason.

Config read: none (the choice of loop is :func:`netwatch.core.use_core_loop`'s: this one
whenever the compiled core is loaded, unless ``NETWATCH_PURE=1`` or
``NETWATCH_CORE=python``). Known limits: the flow table, most TCP states and timers stay
Python, so each new flow still costs a short Python round (``on_start``), and each payload
the deep parsers want one (the deep step only; together about 1.4 % of the packets of a
camera site);
C holds the GIL while it runs (at most :data:`BATCH` records per call); the GIL-released
walk is :func:`netwatch.core.walk_pcap`.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, cast

from netwatch import core
from netwatch.capture.files import MappedPcap
from netwatch.capture.linktypes import LinkType
from netwatch.core import FastStatus
from netwatch.flow.table import Flow
from netwatch.flow.tcpstate import ACK, Endpoint

if TYPE_CHECKING:
    from netwatch.core import DeepPayload
    from netwatch.decode.frames import Decoded
    from netwatch.pipeline import Pipeline

#: Records per C call at most: bounds the time between returns to Python (signals, other
#: threads).
BATCH = 4096
_MASK = 0xFFFFFFFF
_HALF = 0x80000000
_BIT_A, _BIT_D = 1 << 2, 1 << 3  # history bits of 'A' and 'D' (see tcpstate)

#: Packets C handed to Python that Python's own fast branch then took, by the reason C gave
#: (index: :class:`FastStatus`; one counter per reason, for the whole process). Only a
#: packet at a sweep (timers ran first), of a flow that keeps evidence frames or with a
#: value C does not read may be counted here: for the other reasons C and Python apply the
#: same conditions (``tests/test_corefeed.py`` checks that on every capture).
PYTHON_FAST = [0] * len(FastStatus)

#: Try Python's fast branch on COND and NO_TCP hand-backs too (where C decided it does not
#: apply): only to count in :data:`PYTHON_FAST` that C is not stricter than Python
#: (``tests/test_corefeed.py`` sets it; the records are the same either way, since the
#: general path does what the fast branch does whenever its conditions hold).
CHECK_FAST = False

#: Let C make new TCP/UDP flows itself (``FastLoop.run``'s ``start``); tests turn it off to
#: compare with the flows Python makes from C's ``NEW`` hand-back.
START = True
_C_DECIDED = frozenset({int(FastStatus.COND), int(FastStatus.NO_TCP)})


def run_core(pipe: Pipeline, m: MappedPcap) -> tuple[int, int]:
    """Run the records of a memory-mapped classic pcap through the compiled core; return
    (packets, wire bytes) as :func:`netwatch.fastloop.run_mapped` does. The records the C
    walk stops at (a captured length above the maximum, a record cut by the end) and all
    after them go through ``pipe.run``, which counts its own."""
    buf, off, end = m.buf, m.start, m.end
    linktype = m.header.linktype
    if linktype != LinkType.ETHERNET:
        pipe.run(m.rest(off))
        return 0, 0
    little = m.header.byteorder == "<"
    tick = m.header.tick_s
    table = pipe.table
    flows = table.flows
    flows_get = flows.get
    account = pipe.account
    packet = table.packet
    first_packet = table.first_packet
    check_fast = CHECK_FAST
    c_decided = _C_DECIDED
    keep = pipe.keeper.keep
    sweep_timers = table.sweep_timers
    closed_at = table.closed_at
    deep_step = table.deep
    on_start = table.on_start
    start = table.core_new_flows() if START else None
    fast = fast_loop().run
    mask, half_1, ack_flag = _MASK, _HALF - 1, ACK
    bit_a, bit_d = _BIT_A, _BIT_D
    full, new, deep = int(FastStatus.FULL), int(FastStatus.NEW), int(FastStatus.DEEP)
    made = int(FastStatus.STARTED)
    python_fast = PYTHON_FAST
    n = nbytes = 0
    while True:
        # C: the packets of existing flows the fast branch takes, up to the first one
        # Python must take (rec), or BATCH records
        off, done, done_bytes, empty, status, rec = fast(
            flows, buf, off, end, little, tick, table.next_sweep, BATCH, closed_at, True, start
        )
        n += done
        nbytes += done_bytes
        m.stats.empty_records += empty
        if rec is None:
            if status == full:
                continue
            break
        # Python: that one packet, as the Python fused loop would (C is called again after
        # it, with the table's next sweep as this packet left it); C hands it back as
        # (ts, wire length, frame, the decoder's tuple or None for an odd frame)
        ts, wirelen, frame, handed = rec
        n += 1
        nbytes += wirelen
        if status == deep:
            # C counted it as the general path would up to its deep step (the flow found,
            # Flow.last, counters, the in-order TCP segment): only that step is left
            f, is_orig, pay_off, plen = cast("DeepPayload", handed)
            deep_step(f, is_orig, frame, pay_off, plen, ts)
            if f.keep:
                keep(f, ts, linktype, frame, wirelen)
            continue
        if status == made:
            # C made the flow as FlowTable.first_packet would (registered, its first packet
            # counted): on_start and the deep step are left
            f, is_orig, pay_off, plen = cast("DeepPayload", handed)
            if on_start is not None:
                on_start(f, ts)
            if plen:
                deep_step(f, is_orig, frame, pay_off, plen, ts)
            if f.keep:
                keep(f, ts, linktype, frame, wirelen)
            continue
        d = cast("Decoded | None", handed)
        if d is None:
            account(ts, linktype, frame, wirelen)
            continue
        if status == new:
            # C found no flow with its key, before the next sweep: no lookup needed
            started = first_packet(ts, d)
            if started.keep:
                keep(started, ts, linktype, frame, wirelen)
            continue
        # timers due first, as the general path runs them. Python's own fast branch is
        # tried only when C could not: at a sweep, for a flow keeping evidence frames or
        # with a value C does not read (for COND and NO_TCP, C applied the same conditions
        # and Python's could only fail again; CHECK_FAST tries it anyway, for the tests)
        if (status not in c_decided or check_fast) and (
            ts < table.next_sweep or sweep_timers(ts) > ts
        ):
            src, dst, proto, sport, dport, tot, flags, seq, ack, win, pay_off, plen, _, _, _ = d
            if src < dst or (src == dst and sport <= dport):
                fwd = True
                f = flows_get((src, dst, sport, dport, proto))
            else:
                fwd = False
                f = flows_get((dst, src, dport, sport, proto))
            if f is not None:
                is_orig = fwd is f.odir
                if proto == 17:
                    if plen == 0 or (f.deep_o if is_orig else f.deep_r) == 0:
                        if ts > f.last:
                            f.last = ts
                        if is_orig:
                            f.o_pkts += 1
                            f.o_ipb += tot
                            f.o_bytes += plen
                        else:
                            f.r_pkts += 1
                            f.r_ipb += tot
                            f.r_bytes += plen
                        if f.keep:
                            keep(f, ts, linktype, frame, wirelen)
                        python_fast[status] += 1
                        continue
                elif (tcp := f.tcp) is not None:
                    if is_orig:
                        e, p = tcp
                    else:
                        p, e = tcp
                    if (
                        not flags & 0x07
                        and win
                        and seq == e.nxt
                        and (plen == 0 or (f.deep_o if is_orig else f.deep_r) == 0)
                        and (
                            ack == (pd := p.dack)
                            or 0 < pd - ack <= half_1
                            or (ack - pd - 1) & mask >= half_1
                            or pd < 0
                            or not flags & ack_flag
                        )
                    ):
                        if plen:
                            bit = bit_d
                            fits = wirelen == len(frame) or len(frame) >= pay_off + plen
                        else:
                            bit = bit_a if flags & ack_flag else 0
                            fits = True
                        if fits and e.bits & bit == bit:
                            if plen:
                                e.seqmax += plen
                                e.nxt = e.dack = (seq + plen) & mask
                            if ts > f.last:
                                f.last = ts
                            if is_orig:
                                f.o_pkts += 1
                                f.o_ipb += tot
                            else:
                                f.r_pkts += 1
                                f.r_ipb += tot
                            if f.keep:
                                keep(f, ts, linktype, frame, wirelen)
                            python_fast[status] += 1
                            continue
        # the general path, with the tuple the decoder would have built
        f = packet(ts, d)
        if f.keep:
            keep(f, ts, linktype, frame, wirelen)
    m.stats.records += n
    pipe.run(m.rest(off))
    return n, nbytes


@cache
def fast_loop() -> core.FastLoop:
    """The compiled fast branch over :class:`Flow` and :class:`Endpoint` (one per process;
    ``RuntimeError`` when the compiled core is not loaded)."""
    return core.fast_loop(Flow, Endpoint)
