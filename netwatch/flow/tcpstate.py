"""Zeek-compatible TCP endpoint tracking: endpoint states, ``history`` letters, ``conn_state``.

Per TCP packet, :func:`tcp_packet` updates the sender's :class:`Endpoint` (state machine,
sequence space for ``orig_bytes``/``resp_bytes``, content gaps for ``missed_bytes``), hands
the segment's acknowledgement to the peer, and appends ``history`` letters the way Zeek's
``conn.log`` does (upper case for the originator, lower case for the responder).
:func:`conn_state` maps the two endpoint states to Zeek's ``conn_state`` codes (S0, S1, SF,
REJ, S2, S3, RSTO, RSTR, RSTOS0, RSTRH, SH, SHR, OTH), following the documented meaning of
each code.

Semantics taken from Zeek's TCP analyzer (zeek/zeek ``src/packet_analysis/protocol/tcp/
TCPSessionAdapter.cc``, ``src/analyzer/protocol/tcp/TCP_Endpoint.cc`` and
``TCP_Reassembler.cc``, read for behaviour):

* A RST from an endpoint that sent a FIN while its peer also did changes nothing (the FIN
  exchange already closed the connection: ``SF``, not ``RSTO``/``RSTR``); a FIN after the
  peer's FIN-then-RST turns the peer back to closed.
* ``closed_both`` (both endpoints sent a FIN or a RST) is when Zeek stops the connection's
  clock: later packets are counted but no longer extend ``duration``.
* :func:`is_reuse`: a SYN on a connection that either side closed or reset, or a SYN whose
  sequence number differs from the originator's initial one, starts a new connection.
* Content gaps are what the peer acknowledges but the capture never delivered (a segment
  not seen at all, or seen with its payload cut by the snap length): counted in
  ``missed_bytes`` and as ``G``/``g`` only while both endpoints are established or closing
  cleanly, as in Zeek. Segments beyond a hole wait in a bounded list of blocks
  (``MAX_BLOCKS``, the highest is dropped when full) until the hole is filled or acked.
* ``orig_bytes``/``resp_bytes`` are the sequence space seen or acknowledged, SYN and FIN
  octets excluded; zero for a half-open connection aborted by the SYN sender.

Letters as Zeek records them: one per segment (``I``/``Q`` for several of SYN, FIN, RST);
``a d`` once per direction; ``s h f r`` again when the sequence number changes; ``t``
(retransmission), ``g`` (gap) and ``w`` (zero window) at the 1st, 10th, 100th and 1000th
occurrence. Simplifications against Zeek (documented, deliberate): checksums are not
verified, so ``c`` never appears; there is no reassembly deferral of a close while data is
pending; a SYN-ACK's acknowledgement does not seed the other side's sequence numbers.
"""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING

from netwatch import core
from netwatch.lazyre import lazy

FIN = 0x01
SYN = 0x02
RST = 0x04
ACK = 0x10

_MASK = 0xFFFFFFFF
_HALF = 0x80000000
_WRAP = 0x100000000

#: Out-of-order blocks kept per endpoint while a hole before them is open.
MAX_BLOCKS = 16


class TcpState(IntEnum):
    """Zeek's TCP endpoint states."""

    INACTIVE = 0
    SYN_SENT = 1
    SYN_ACK_SENT = 2
    PARTIAL = 3
    ESTABLISHED = 4
    CLOSED = 5
    RESET = 6


_INACTIVE = TcpState.INACTIVE.value
_SYN_SENT = TcpState.SYN_SENT.value
_SYN_ACK_SENT = TcpState.SYN_ACK_SENT.value
_PARTIAL = TcpState.PARTIAL.value
_ESTABLISHED = TcpState.ESTABLISHED.value
_CLOSED = TcpState.CLOSED.value
_RESET = TcpState.RESET.value

# history letter bits (once-per-direction letters)
_B_S, _B_H, _B_A, _B_D, _B_F, _B_R, _B_Q, _B_I = (1 << i for i in range(8))


class Endpoint:
    """One side of a TCP connection. Sequence positions are unwrapped (Python ints)."""

    __slots__ = (
        "acked",
        "base",
        "bits",
        "blocks",
        "dack",
        "deliv",
        "fin",
        "gaps",
        "last_ctl",
        "letters",
        "missed",
        "nxt",
        "prev",
        "retx",
        "seqmax",
        "state",
        "zwin",
    )

    def __init__(self, letters: str) -> None:
        self.state = _INACTIVE
        self.prev = _INACTIVE  # the state before the last change (Zeek's prev_state)
        self.base = -1  # first byte of data in sequence space (unwrapped), -1: unknown
        self.seqmax = -1  # highest sequence number + 1 seen (unwrapped)
        self.deliv = -1  # end of the data delivered in order (captured, no hole before)
        self.acked = -1  # highest acknowledgement received from the peer (unwrapped)
        self.fin = -1  # position of the FIN octet once a FIN was sent
        # For the fused loop, 32-bit: the next in-order sequence number while everything
        # seen was delivered and the state needs no bookkeeping (else -1; while >= 0 the
        # fused loop advances ``seqmax`` alone and ``deliv`` is taken to equal it), and the
        # end of the delivered data (-1: unknown).
        self.nxt = -1
        self.dack = -1
        self.blocks: list[tuple[int, int]] | None = None  # delivered beyond a hole
        self.last_ctl: list[int] | None = None  # sequence of the last S/H, F and R letters
        self.bits = 0
        self.retx = 0
        self.gaps = 0
        self.zwin = 0
        self.missed = 0
        self.letters = letters  # 'SHADFRQITGW' or the lower-case form

    def size(self, peer: Endpoint) -> int:
        """Payload bytes in sequence space, seen or acknowledged (Zeek ``orig_bytes``/
        ``resp_bytes``)."""
        if self.base < 0:
            return 0
        if (
            self.state == _RESET
            and self.prev == _SYN_SENT
            and peer.state == _INACTIVE
            and self.acked > self.base
        ):
            return 0  # a half-open connection aborted by the SYN sender
        top = max(self.seqmax, self.acked)
        if 0 <= self.fin < top:
            top -= 1  # the FIN octet is not data
        return max(top - self.base, 0)


#: The pure-Python reference :class:`Endpoint`: the one in use without the compiled core,
#: and what the C-backed one is tested against (``tests/test_core.py``).
PyEndpoint = Endpoint

if not TYPE_CHECKING and (_BASES := core.flow_bases()) is not None:

    class Endpoint(_BASES[1]):
        """One side of a TCP connection: :class:`PyEndpoint`'s attributes held by the
        compiled core (``netwatch._core.EndpointBase``: ``nxt``, ``dack`` and ``seqmax``
        are C fields that read back as the int stored), with its methods."""

        __slots__ = ()
        size = PyEndpoint.size

        def __getstate__(self) -> tuple[None, dict[str, object]]:
            return core.slot_state(self, PyEndpoint.__slots__)


ORIG_LETTERS = "SHADFRQITGW"
RESP_LETTERS = ORIG_LETTERS.lower()


_LOG_COUNTS = frozenset({1, 10, 100, 1000})


def _log_letter(count: int) -> bool:
    return count in _LOG_COUNTS


def _set(e: Endpoint, state: int) -> None:
    if state != e.state:
        e.prev = e.state
        e.state = state


def tcp_packet(
    e: Endpoint,
    peer: Endpoint,
    flags: int,
    seq: int,
    ack: int,
    win: int,
    pay_len: int,
    whole: bool,
    hist: list[str],
) -> None:
    """Account one TCP segment sent by ``e`` (``whole``: its payload was captured in full);
    append new history letters to ``hist``."""
    if e.nxt >= 0:  # the fused loop advanced seqmax alone: all of it was delivered
        e.deliv = e.seqmax
    if peer.nxt >= 0:
        peer.deliv = peer.seqmax
    if flags & 0x07 or e.base < 0:  # SYN, FIN or RST, or the endpoint's first segment
        _control(e, peer, flags, seq, win, pay_len, whole, hist)
    else:
        # Zeek's order of letters: the segment's own letter, W, then T (then the peer's G)
        new = _B_D if pay_len > 0 else _B_A if flags & ACK else 0
        if new & ~e.bits:
            _letters(e, new, hist)
        if win == 0:
            _zero_window(e, peer, hist)
        rel = (seq - e.seqmax) & _MASK
        if pay_len > 0:
            if rel == 0:
                if whole and e.deliv == e.seqmax:
                    e.deliv += pay_len
                elif whole:
                    _deliver(e, e.seqmax, pay_len)
                e.seqmax += pay_len
            else:
                _out_of_order(e, rel, pay_len, whole, hist)
        elif 0 < rel < _HALF:  # an empty segment beyond what was seen: data went unseen
            e.seqmax += rel
        if e.state == _INACTIVE:
            _wake(e, peer, flags, pay_len)
    pd = peer.deliv
    if flags & ACK and pd >= 0:
        adv = (ack - pd) & _MASK
        if 0 < adv < _HALF:
            _ack_received(peer, e, pd + adv, not flags & RST, hist)
            pd = peer.deliv
        peer.dack = pd & _MASK
    # the fused loop's 32-bit values (see Endpoint); inline: this runs for every segment
    d = e.deliv
    e.dack = d & _MASK if d >= 0 else -1
    e.nxt = d & _MASK if d == e.seqmax >= 0 and _PARTIAL <= e.state <= _CLOSED else -1
    peer.nxt = pd & _MASK if pd == peer.seqmax >= 0 and _PARTIAL <= peer.state <= _CLOSED else -1


def _control(
    e: Endpoint,
    peer: Endpoint,
    flags: int,
    seq: int,
    win: int,
    pay_len: int,
    whole: bool,
    hist: list[str],
) -> None:
    """The rarer segments: SYN, FIN, RST, multi-flag, or an endpoint's first segment."""
    new = _control_letter(flags, pay_len)
    if new & ~e.bits:
        _letters(e, new, hist)
    if new & (_B_S | _B_H | _B_F | _B_R):
        _repeat_letter(e, new, seq + pay_len if new == _B_F else seq, hist)
    if win == 0 and not flags & RST:
        _zero_window(e, peer, hist)
    if flags & SYN:
        if e.base < 0:
            _start(e, seq + 1)
        if e.state == _INACTIVE:
            if e.letters[0] == "S":  # the originator: an attempt (or a SYN-ACK it sent)
                _set(e, _SYN_ACK_SENT if flags & ACK else _SYN_SENT)
            else:  # the responder answers: Zeek takes both ends as established
                if peer.state == _SYN_SENT:
                    _set(peer, _ESTABLISHED)
                _set(e, _ESTABLISHED)
        seq += 1  # the SYN octet; data (if any) follows it
    elif e.base < 0:
        _start(e, seq)
    if flags & RST:
        if not (e.state == _CLOSED and peer.state == _CLOSED):  # after a FIN exchange: SF
            _set(e, _RESET)
    elif flags & FIN and e.state != _RESET:
        if e.state in (_PARTIAL, _ESTABLISHED) and peer.state == _RESET and peer.prev == _CLOSED:
            _set(peer, _CLOSED)  # the peer's FIN then RST was a normal close
        _set(e, _CLOSED)
    if e.state == _INACTIVE:
        _wake(e, peer, flags, pay_len)
    if pay_len > 0 and not flags & RST:
        rel = (seq - e.seqmax) & _MASK
        if rel == 0:
            if whole:
                _deliver(e, e.seqmax, pay_len)
            e.seqmax += pay_len
        else:
            _out_of_order(e, rel, pay_len, whole, hist)
    elif not flags & RST:
        rel = (seq - e.seqmax) & _MASK
        if 0 < rel < _HALF:  # e.g. a FIN beyond data not seen (yet)
            e.seqmax += rel
    if flags & FIN and e.fin < 0:
        rel = (seq + pay_len - e.seqmax) & _MASK  # the FIN octet follows the segment's data
        e.fin = e.seqmax + rel if rel < _HALF else e.seqmax + rel - _WRAP
        if e.fin >= e.seqmax:
            e.seqmax = e.fin + 1  # the FIN octet is sequence space (size() leaves it out)
        _fin_reached(e)


_REPEATED = {_B_S: 0, _B_H: 0, _B_F: 1, _B_R: 2}


def _repeat_letter(e: Endpoint, bit: int, seq: int, hist: list[str]) -> None:
    """Zeek repeats S/H, F and R when a later one carries another sequence number (for a
    FIN: the one after its data)."""
    last = e.last_ctl
    if last is None:
        last = e.last_ctl = [-1, -1, -1]
        slot = _REPEATED[bit]
    else:
        slot = _REPEATED[bit]
        if last[slot] not in (-1, seq):
            hist.append(e.letters[bit.bit_length() - 1])
    last[slot] = seq


def _control_letter(flags: int, pay_len: int) -> int:
    """Zeek records one letter per segment: I or Q for several of SYN/FIN/RST, else the
    one set, else D for data or A for a bare ACK."""
    ctl = flags & 0x07
    if ctl & (ctl - 1):  # more than one of SYN, FIN, RST
        return _B_I if ctl & FIN and ctl & RST else _B_Q
    if ctl == SYN:
        return _B_H if flags & ACK else _B_S
    if ctl == FIN:
        return _B_F
    if ctl == RST:
        return _B_R
    if pay_len > 0:
        return _B_D
    return _B_A if flags & ACK else 0


def syn_reversal(orig: Endpoint, resp: Endpoint) -> bool:
    """A responder's pure SYN after the originator's lone SYN-ACK: the two were seen in
    reverse order, so Zeek flips the roles (the caller swaps the endpoints)."""
    return orig.state == _SYN_ACK_SENT and resp.state == _INACTIVE


def after_lone_syn_ack(orig: Endpoint, resp: Endpoint) -> bool:
    """The connection began with a SYN-ACK nobody answered yet: an ACK or data segment now
    shows it is a real connection, and Zeek (since 5.1) flips it so the SYN-ACK sender is
    the responder (a stealth scan would not go on with ACKs or data)."""
    return orig.state == _SYN_ACK_SENT and resp.state == _INACTIVE


def establish(e: Endpoint) -> None:
    """Take an endpoint as established (its SYN-ACK, once the roles are flipped)."""
    _set(e, _ESTABLISHED)


def establish_both(orig: Endpoint, resp: Endpoint) -> None:
    """After a SYN/SYN-ACK reversal both ends are established (as Zeek)."""
    _set(orig, _ESTABLISHED)
    _set(resp, _ESTABLISHED)


def _start(e: Endpoint, first: int) -> None:
    e.base = e.seqmax = e.deliv = first


def _unwrap(e: Endpoint, seq: int) -> int:
    """``seq`` as an unwrapped position near the endpoint's delivered data."""
    rel = (seq - e.deliv) & _MASK
    return e.deliv + rel if rel < _HALF else e.deliv + rel - _WRAP


def _out_of_order(e: Endpoint, rel: int, pay_len: int, whole: bool, hist: list[str]) -> None:
    start = e.seqmax + rel if rel < _HALF else e.seqmax + rel - _WRAP
    if whole:
        _deliver(e, start, pay_len)
    if rel < _HALF:  # starts beyond what we saw: a hole before it, for now
        e.seqmax = start + pay_len
        return
    over = start + pay_len - e.seqmax
    if over > 0:
        e.seqmax += over  # partly new data
    else:
        e.retx += 1
        if _log_letter(e.retx):
            hist.append(e.letters[8])


def _deliver(e: Endpoint, start: int, length: int) -> None:
    """Captured payload [start, start + length): extends the in-order data or waits."""
    end = start + length
    if end <= e.deliv:
        return
    if start <= e.deliv:
        e.deliv = end
        if e.blocks:
            _absorb(e)
        _fin_reached(e)
        return
    blocks = e.blocks
    if blocks is None:
        blocks = e.blocks = []
    blocks.append((start, end))
    blocks.sort()
    if len(blocks) > MAX_BLOCKS:
        blocks.pop()


def _absorb(e: Endpoint) -> None:
    """Blocks that now join the in-order data."""
    blocks = e.blocks
    assert blocks is not None
    while blocks and blocks[0][0] <= e.deliv:
        e.deliv = max(e.deliv, blocks.pop(0)[1])


def _ack_received(e: Endpoint, peer: Endpoint, upto: int, trusted: bool, hist: list[str]) -> None:
    """The peer acknowledged ``e``'s data up to ``upto``: what was never delivered below it
    is a content gap."""
    if trusted and upto > e.acked:
        e.acked = upto
    if e.fin >= 0 and upto > e.fin:
        upto = e.fin  # the FIN octet is not data
    if upto <= e.deliv:
        return
    blocks = e.blocks
    while blocks and blocks[0][0] < upto:
        start, end = blocks.pop(0)
        if start > e.deliv:
            _gap(e, peer, start - e.deliv, hist)
        e.deliv = max(e.deliv, end)
    if upto > e.deliv:
        _gap(e, peer, upto - e.deliv, hist)
        e.deliv = upto
    _fin_reached(e)


def _fin_reached(e: Endpoint) -> None:
    """Every byte before the FIN is delivered: the FIN octet counts as delivered too, so an
    ACK of the FIN is no gap (and the fused loop keeps taking such ACKs)."""
    if e.deliv == e.fin >= 0:
        e.deliv += 1


def _clean(e: Endpoint) -> bool:
    return e.state == _ESTABLISHED or (e.state == _CLOSED and e.prev == _ESTABLISHED)


def _gap(e: Endpoint, peer: Endpoint, length: int, hist: list[str]) -> None:
    if _clean(e) and _clean(peer):
        e.missed += length
        e.gaps += 1
        if _log_letter(e.gaps):
            hist.append(e.letters[9])


def _zero_window(e: Endpoint, peer: Endpoint, hist: list[str]) -> None:
    if peer.state == _CLOSED or e.state == _RESET:
        return  # after the peer's FIN, or own RST, a zero window means nothing (as Zeek)
    e.zwin += 1
    if _log_letter(e.zwin):
        hist.append(e.letters[10])


def _wake(e: Endpoint, peer: Endpoint, flags: int, pay_len: int) -> None:
    """An endpoint's first segment without a SYN (Zeek's rules for an inactive endpoint):
    a responder's bare ACK of a SYN leaves it inactive; an ACK after the peer's SYN-ACK
    establishes it (the SYN was missed); anything else makes it a partial connection."""
    if e.letters[0] != "S" and pay_len == 0 and peer.state == _SYN_SENT:
        return
    _set(e, _ESTABLISHED if flags & ACK and peer.state == _ESTABLISHED else _PARTIAL)


def _letters(e: Endpoint, new: int, hist: list[str]) -> None:
    fresh = new & ~e.bits
    e.bits |= fresh
    for i in range(8):
        if fresh & (1 << i):
            hist.append(e.letters[i])


_rstos0 = lazy(r"\^?S[^HAFGIQ]*R.*")  # compiled at the first flow that needs it


def conn_state(orig: Endpoint, resp: Endpoint, history: str) -> str:
    """Zeek's ``conn_state`` for a TCP connection from its two endpoints."""
    os_, rs = orig.state, resp.state
    o_inactive = os_ in (_INACTIVE, _PARTIAL)
    r_inactive = rs in (_INACTIVE, _PARTIAL)
    if rs == _RESET:
        if os_ in (_SYN_SENT, _SYN_ACK_SENT) or (
            os_ == _RESET and orig.size(resp) == 0 and resp.size(orig) == 0
        ):
            return "REJ"
        return "RSTRH" if o_inactive else "RSTR"
    if os_ == _RESET:
        if r_inactive:
            return "RSTOS0" if _rstos0().fullmatch(history) else "OTH"
        return "RSTO"
    if rs == _CLOSED and os_ == _CLOSED:
        return "SF"
    if os_ == _CLOSED:
        return "SH" if r_inactive else "S2"
    if rs == _CLOSED:
        return "SHR" if o_inactive else "S3"
    if os_ == _SYN_SENT and rs == _INACTIVE:
        return "S0"
    if os_ == _ESTABLISHED and rs == _ESTABLISHED:
        return "S1"
    return "OTH"


def closed_both(orig: Endpoint, resp: Endpoint) -> bool:
    """Both endpoints sent a FIN or a RST: Zeek's connection clock stops."""
    return orig.state >= _CLOSED and resp.state >= _CLOSED


def is_closed(orig: Endpoint, resp: Endpoint) -> bool:
    """True once Zeek would schedule the connection's removal: both sides closed, either
    side reset, or one side closed while the other never sent anything."""
    o, r = orig.state, resp.state
    if _RESET in (o, r):
        return True
    if o == _CLOSED:
        return r in (_CLOSED, _INACTIVE)
    return r == _CLOSED and o == _INACTIVE


def is_reuse(orig: Endpoint, resp: Endpoint, flags: int, seq: int) -> bool:
    """Does a SYN (or a SYN-ACK on a connection whose originator never spoke) start a new
    connection on this 5-tuple? Yes once either side closed or reset; otherwise when its
    initial sequence number differs from the one the connection started with."""
    if flags & ACK:
        if orig.state != _INACTIVE:
            return False
        first = resp
    else:
        first = orig
    if orig.state >= _CLOSED or resp.state >= _CLOSED:
        return True
    if first.base < 0:
        return False  # that side's initial sequence number is unknown (not seen yet)
    return (seq + 1 - first.base) & _MASK != 0
