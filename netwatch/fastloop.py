"""The fused per-packet loop: pcap records to flow counters without a call per layer.

Most packets on a camera site are one of a few shapes: an RTP/UDP datagram, or a TCP data
segment or ACK in an established connection, on Ethernet with at most one 802.1Q tag,
belonging to a flow that already exists and whose first payloads the deep parsers have
already seen. For those, :func:`run_mapped` reads the pcap record header, the IP and port
fields and updates the flow's counters in one loop body, straight from the memory-mapped
file: no frame copy, no per-layer call, no tuple per packet.

Every other packet (new flows, SYN/FIN/RST, out-of-order or gap segments, payload the
capture cut short, an ACK of data the capture has not delivered, a segment not at the
endpoint's next sequence number (``Endpoint.nxt``, -1 while a hole is open or the endpoint
is in the handshake or reset), packets the deep parsers still want, the periodic sweep,
tunnels, fragments, other link types, anything odd) takes the general path:
``Decoder.decode`` then ``FlowTable.packet``, which own the semantics. Timers due between
periodic sweeps (a closed connection's removal, a DNS or partial-close check) run here first
(``FlowTable.sweep_timers``), as the general path would run them before its packet.
A fast packet of a flow that still keeps evidence frames (``Flow.keep`` > 0,
:mod:`netwatch.alerts.evidence`) is kept here as the general path would keep it.
The fast branch below may only do what those would do for the same packet; the test
``tests/test_fastloop.py`` replays captures both ways and requires identical flow records.

Reads no config beyond what the pipeline's components were built with.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from netwatch.capture.files import MappedPcap
from netwatch.capture.linktypes import LinkType
from netwatch.capture.pcap import MAX_CAPLEN
from netwatch.decode.tunnels import TUNNEL_UDP_PORTS
from netwatch.flow.tcpstate import ACK

if TYPE_CHECKING:
    from netwatch.pipeline import Pipeline

_IP4_PORTS = struct.Struct("!BxH2xHxBxx4s4sHH")
_IP6_PORTS = struct.Struct("!IHBx16s16sHH")
_TCP_REST = struct.Struct("!IIBBH")
_MASK = 0xFFFFFFFF
_HALF = 0x80000000
_BIT_A, _BIT_D = 1 << 2, 1 << 3  # history bits of 'A' and 'D' (see tcpstate)


def run_mapped(pipe: Pipeline, m: MappedPcap) -> tuple[int, int]:
    """Run the records of a memory-mapped classic pcap; return (packets, wire bytes) of the
    fused part. The records it does not take (another link type, an odd record and all
    after it, the last 30 bytes) go through ``pipe.run``, which counts its own."""
    buf, off, end = m.buf, m.start, m.end
    linktype = m.header.linktype
    if linktype != LinkType.ETHERNET:
        pipe.run(m.rest(off))
        return 0, 0
    order = m.header.byteorder
    # The record header and the EtherType in one unpack: in the file's byte order, so on a
    # little-endian file the EtherType constants below are byte-swapped.
    rec = struct.Struct(order + "IIII12xH2xH").unpack_from  # also the EtherType after a tag
    swap = order == "<"
    eth_v4 = 0x0008 if swap else 0x0800
    eth_v6 = 0xDD86 if swap else 0x86DD
    eth_vlan = 0x0081 if swap else 0x8100
    ip4, ip6, tcp_rest = _IP4_PORTS.unpack_from, _IP6_PORTS.unpack_from, _TCP_REST.unpack_from
    tunnels = TUNNEL_UDP_PORTS
    tick = m.header.tick_s
    table = pipe.table
    flows_get = table.flows.get
    account = pipe.account
    keep = pipe.keeper.keep  # evidence frames of a flow that still keeps (Flow.keep > 0)
    next_sweep = table.next_sweep
    sweep_timers = table.sweep_timers
    mask, half_1, ack_flag = _MASK, _HALF - 1, ACK
    bit_a, bit_d = _BIT_A, _BIT_D
    maxcap = MAX_CAPLEN
    last = end - 34  # the fused unpack reads 34 bytes; the tail goes to the general walker
    n = nbytes = 0
    while off <= last:
        sec, frac, caplen, wirelen, etype, tagged = rec(buf, off)
        start = off + 16
        nxt = start + caplen
        if nxt > end or caplen == 0 or caplen > maxcap:
            break  # odd record: the general walker accounts for it
        off = nxt
        ts = sec + frac * tick
        n += 1
        nbytes += wirelen
        # timers due first, as the general path runs them (which it does itself when the
        # periodic sweep is due too: sweep_timers then returns ts)
        if caplen >= 58 and (ts < next_sweep or (next_sweep := sweep_timers(ts)) > ts):
            ipo = start + 14
            if etype == eth_vlan:
                etype = tagged
                ipo = start + 18
            fast = False
            if etype == eth_v4:
                vhl, tot, frag, proto, src, dst, sport, dport = ip4(buf, ipo)
                if vhl == 0x45 and not frag & 0x3FFF and (proto == 6 or proto == 17):
                    limit = wirelen - ipo + start
                    if tot == 0 or tot > limit:
                        tot = limit
                    hdr = 20
                    fast = True
            elif etype == eth_v6 and caplen >= ipo - start + 44:
                vtf, plen6, proto, src, dst, sport, dport = ip6(buf, ipo)
                if vtf >> 28 == 6 and (proto == 6 or proto == 17):
                    limit = wirelen - ipo + start - 40
                    if plen6 == 0 or plen6 > limit:
                        plen6 = max(limit, 0)
                    tot = plen6 + 40
                    hdr = 40
                    fast = True
            if fast:
                if src < dst or (src == dst and sport <= dport):
                    fwd = True
                    f = flows_get((src, dst, sport, dport, proto))
                else:
                    fwd = False
                    f = flows_get((dst, src, dport, sport, proto))
                if f is not None:
                    is_orig = fwd is f.odir
                    if proto == 17:
                        plen = tot - hdr - 8
                        if (
                            plen >= 0
                            and caplen >= ipo - start + hdr + 8
                            and dport not in tunnels
                            and (plen == 0 or (f.deep_o if is_orig else f.deep_r) == 0)
                        ):
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
                    elif (tcp := f.tcp) is not None and caplen >= ipo - start + hdr + 20:
                        seq, ack, doff, flags, win = tcp_rest(buf, ipo + hdr + 4)
                        thl = (doff >> 4) << 2
                        plen = tot - hdr - thl
                        if is_orig:
                            e, p = tcp
                        else:
                            p, e = tcp
                        if (
                            not flags & 0x07
                            and win
                            # in order, nothing undelivered before it, partial to closed
                            and seq == e.nxt
                            and thl >= 20
                            and plen >= 0
                            and (plen == 0 or (f.deep_o if is_orig else f.deep_r) == 0)
                            # not an ACK of data the capture did not deliver (a gap)
                            and (
                                ack == (pd := p.dack)
                                or 0 < pd - ack <= half_1  # behind, no wrap in between
                                or (ack - pd - 1) & mask >= half_1
                                or pd < 0
                                or not flags & ack_flag
                            )
                        ):
                            if plen:
                                bit = bit_d
                                fits = caplen == wirelen or caplen >= ipo - start + hdr + thl + plen
                            else:
                                bit = bit_a if flags & ack_flag else 0
                                fits = True
                            if fits and e.bits & bit == bit:
                                if plen:  # (e.deliv follows e.seqmax while e.nxt >= 0)
                                    e.seqmax += plen
                                    e.nxt = e.dack = (seq + plen) & mask
                                if ts > f.last:
                                    f.last = ts
                                if is_orig:  # TCP payload bytes: in the endpoints
                                    f.o_pkts += 1
                                    f.o_ipb += tot
                                else:
                                    f.r_pkts += 1
                                    f.r_ipb += tot
                                if f.keep:
                                    keep(f, ts, linktype, buf[start:nxt], wirelen)
                                continue
        account(ts, linktype, buf[start:nxt], wirelen)
        next_sweep = table.next_sweep
    m.stats.records += n
    pipe.run(m.rest(off))
    return n, nbytes
