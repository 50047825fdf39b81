"""The fused loop fed by the compiled core: C walks and decodes, Python keeps the flows.

A first wiring of ``netwatch._core`` (:mod:`netwatch.core`) into the pipeline, off by
default: with ``NETWATCH_CORE=c`` (and the extension built), :func:`run_core` replaces
:func:`netwatch.fastloop.run_mapped` for memory-mapped classic pcaps and live blocks. The C
walk (GIL released) turns a batch of pcap records into fixed-size records; this loop then
does, per packet, what the fused loop does after its own header parse: the same flow
lookup and the same conditions for the counter-only update of an existing flow. Every
other packet takes the general path: a common-shape one goes straight to
``FlowTable.packet`` with the decoded tuple the C built (the decoder would build the same:
``tests/test_core.py``), an odd one through ``Pipeline.account`` (the Python decoder).
``tests/test_corefeed.py`` requires identical flow records from this loop and the general
path on every capture.

Config read: ``NETWATCH_CORE`` (environment; ``c`` selects this loop), through
:func:`netwatch.core.use_core_loop`. Known limits: the flow table, TCP states and timers
stay Python here, so the gain is the walk and decode only; records are unpacked one by
one in Python (``struct.iter_unpack``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from netwatch import core
from netwatch.capture.files import MappedPcap
from netwatch.capture.linktypes import LinkType
from netwatch.flow.tcpstate import ACK

if TYPE_CHECKING:
    from netwatch.pipeline import Pipeline

#: Records per C call: bounds the record buffer (88 bytes each) and the time between
#: GIL releases.
BATCH = 4096
_MASK = 0xFFFFFFFF
_HALF = 0x80000000
_BIT_A, _BIT_D = 1 << 2, 1 << 3  # history bits of 'A' and 'D' (see tcpstate)


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
    flows_get = table.flows.get
    account = pipe.account
    packet = table.packet
    keep = pipe.keeper.keep
    sweep_timers = table.sweep_timers
    unpack = core.RECORD.iter_unpack
    mask, half_1, ack_flag = _MASK, _HALF - 1, ACK
    bit_a, bit_d = _BIT_A, _BIT_D
    n = nbytes = 0
    while True:
        batch = core.walk_pcap(buf, off, end, little=little, ethernet=True, limit=BATCH)
        m.stats.empty_records += batch.empty
        next_sweep = table.next_sweep
        for (
            start,
            sec,
            frac,
            caplen,
            wirelen,
            tot,
            seq,
            ack,
            pay_off,
            plen,
            sport,
            dport,
            win,
            vlan,
            kind,
            proto,
            flags,
            src16,
            dst16,
        ) in unpack(batch.records):
            ts = sec + frac * tick
            nxt = start + caplen
            n += 1
            nbytes += wirelen
            if not kind:
                account(ts, linktype, buf[start:nxt], wirelen)
                next_sweep = table.next_sweep
                continue
            if kind == 4:
                src, dst = src16[:4], dst16[:4]
            else:
                src, dst = src16, dst16
            # timers due first, as the general path runs them
            if ts < next_sweep or (next_sweep := sweep_timers(ts)) > ts:
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
                                keep(f, ts, linktype, buf[start:nxt], wirelen)
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
                                fits = caplen == wirelen or caplen >= pay_off + plen
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
                                    keep(f, ts, linktype, buf[start:nxt], wirelen)
                                continue
            # the general path, with the tuple the decoder would have built
            frame = buf[start:nxt]
            f = packet(
                ts,
                (
                    src,
                    dst,
                    proto,
                    sport,
                    dport,
                    tot,
                    flags,
                    seq,
                    ack,
                    win,
                    pay_off,
                    plen,
                    frame,
                    0,
                    vlan,
                ),
            )
            if f.keep:
                keep(f, ts, linktype, frame, wirelen)
            next_sweep = table.next_sweep
        off = batch.next
        if batch.status is not core.Status.FULL:
            break
    m.stats.records += n
    pipe.run(m.rest(off))
    return n, nbytes
