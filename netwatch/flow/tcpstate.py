"""Zeek-compatible TCP endpoint tracking: endpoint states, ``history`` letters, ``conn_state``.

Per TCP packet, :func:`tcp_packet` updates the sender's :class:`Endpoint` (state machine,
sequence space for ``orig_bytes``/``resp_bytes``, content gaps for ``missed_bytes``) and
appends ``history`` letters the way Zeek's ``conn.log`` does (upper case for the
originator, lower case for the responder). :func:`conn_state` maps the two endpoint states
to Zeek's ``conn_state`` codes (S0, S1, SF, REJ, S2, S3, RSTO, RSTR, RSTOS0, RSTRH, SH, SHR,
OTH), following the documented meaning of each code.

Simplifications against Zeek (documented, deliberate): ``s h a d f r`` are recorded once
per direction (Zeek repeats ``s h f r`` when the sequence number changes); the logarithmic
letters ``t`` (retransmission), ``g`` (gap) and ``w`` (zero window) are recorded at the 1st,
10th and 100th occurrence as in Zeek; checksums are not verified, so ``c`` never appears.
A content gap is counted when a segment starts beyond the highest sequence seen so far;
later out-of-order fills are not subtracted.
"""

from __future__ import annotations

import re
from enum import IntEnum

FIN = 0x01
SYN = 0x02
RST = 0x04
ACK = 0x10

_MASK = 0xFFFFFFFF
_HALF = 0x80000000


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
    """One side of a TCP connection."""

    __slots__ = ("base", "bits", "gaps", "letters", "missed", "retx", "seqmax", "state", "zwin")

    def __init__(self, letters: str) -> None:
        self.state = _INACTIVE
        self.base = -1  # first byte of data in sequence space (unwrapped), -1: unknown
        self.seqmax = -1  # highest sequence number + 1 seen (unwrapped)
        self.bits = 0
        self.retx = 0
        self.gaps = 0
        self.zwin = 0
        self.missed = 0
        self.letters = letters  # 'SHADFRQITGW' or the lower-case form

    def size(self) -> int:
        """Payload bytes in sequence space (Zeek ``orig_bytes``/``resp_bytes``)."""
        if self.base < 0:
            return 0
        return max(self.seqmax - self.base, 0)


ORIG_LETTERS = "SHADFRQITGW"
RESP_LETTERS = ORIG_LETTERS.lower()


_LOG_COUNTS = frozenset({1, 10, 100, 1000})


def _log_letter(count: int) -> bool:
    return count in _LOG_COUNTS


def tcp_packet(
    e: Endpoint, peer: Endpoint, flags: int, seq: int, win: int, pay_len: int, hist: list[str]
) -> None:
    """Account one TCP segment sent by ``e``; append new history letters to ``hist``."""
    if flags & 0x07 or e.base < 0:  # SYN, FIN or RST, or the endpoint's first segment
        _control(e, peer, flags, seq, win, pay_len, hist)
        return
    if pay_len > 0:
        rel = (seq - e.seqmax) & _MASK
        if rel == 0:
            e.seqmax += pay_len
        else:
            _out_of_order(e, rel, pay_len, hist)
        new = _B_D
    else:
        new = _B_A if flags & ACK else 0
    if win == 0:
        _zero_window(e, hist)
    if e.state < _PARTIAL:
        _establish(e, peer, flags, pay_len)
    if new & ~e.bits:
        _letters(e, new, hist)


def _control(
    e: Endpoint, peer: Endpoint, flags: int, seq: int, win: int, pay_len: int, hist: list[str]
) -> None:
    """The rarer segments: SYN, FIN, RST, multi-flag, or an endpoint's first segment."""
    new = 0
    if flags & SYN:
        if flags & ACK:
            new |= _B_H
            if e.state in (_INACTIVE, _SYN_SENT):
                e.state = _SYN_ACK_SENT
        else:
            new |= _B_S
            if e.state == _INACTIVE:
                e.state = _SYN_SENT
        if flags & (FIN | RST):
            new |= _B_Q
        if e.base < 0:
            e.base = seq + 1
            e.seqmax = seq + 1
    elif e.state == _INACTIVE:
        e.state = _PARTIAL
    if e.base < 0:
        e.base = seq
        e.seqmax = seq
    if flags & RST:
        new |= _B_R
        if flags & FIN:
            new |= _B_I
        e.state = _RESET
    elif flags & FIN:
        new |= _B_F
        if e.state != _RESET:
            e.state = _CLOSED
    if pay_len > 0:
        new |= _B_D
        rel = (seq - e.seqmax) & _MASK
        if rel == 0:
            e.seqmax += pay_len
        else:
            _out_of_order(e, rel, pay_len, hist)
    elif flags & ACK and not flags & (SYN | FIN | RST):
        new |= _B_A
    if win == 0 and not flags & (SYN | RST):
        _zero_window(e, hist)
    if e.state < _PARTIAL or peer.state < _PARTIAL:
        _establish(e, peer, flags, pay_len)
    if new & ~e.bits:
        _letters(e, new, hist)


def _out_of_order(e: Endpoint, rel: int, pay_len: int, hist: list[str]) -> None:
    if rel < _HALF:  # starts beyond what we saw: a content gap
        e.missed += rel
        e.seqmax += rel + pay_len
        e.gaps += 1
        if _log_letter(e.gaps):
            hist.append(e.letters[9])
        return
    over = rel + pay_len - 0x100000000
    if over > 0:
        e.seqmax += over  # partly new data
    else:
        e.retx += 1
        if _log_letter(e.retx):
            hist.append(e.letters[8])


def _zero_window(e: Endpoint, hist: list[str]) -> None:
    e.zwin += 1
    if _log_letter(e.zwin):
        hist.append(e.letters[10])


def _establish(e: Endpoint, peer: Endpoint, flags: int, pay_len: int) -> None:
    """Both ends become ESTABLISHED: the SYN sender ACKs the SYN-ACK, or the SYN-ACK sender
    already sends data (the ACK was lost before the mirror port)."""
    acked = flags & ACK and e.state == _SYN_SENT and peer.state == _SYN_ACK_SENT
    if acked or (pay_len > 0 and e.state == _SYN_ACK_SENT and peer.state == _SYN_SENT):
        e.state = _ESTABLISHED
        peer.state = _ESTABLISHED


def _letters(e: Endpoint, new: int, hist: list[str]) -> None:
    fresh = new & ~e.bits
    e.bits |= fresh
    for i in range(8):
        if fresh & (1 << i):
            hist.append(e.letters[i])


_RSTOS0 = re.compile(r"\^?S[^HAFGIQ]*R.*")


def conn_state(orig: Endpoint, resp: Endpoint, history: str) -> str:
    """Zeek's ``conn_state`` for a TCP connection from its two endpoints."""
    os_, rs = orig.state, resp.state
    o_inactive = os_ in (_INACTIVE, _PARTIAL)
    r_inactive = rs in (_INACTIVE, _PARTIAL)
    if rs == _RESET:
        if os_ in (_SYN_SENT, _SYN_ACK_SENT) or (
            os_ == _RESET and orig.size() == 0 and resp.size() == 0
        ):
            return "REJ"
        return "RSTRH" if o_inactive else "RSTR"
    if os_ == _RESET:
        if r_inactive:
            return "RSTOS0" if _RSTOS0.fullmatch(history) else "OTH"
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


def is_closed(orig: Endpoint, resp: Endpoint) -> bool:
    """True once the connection is over: both sides closed, or either side reset."""
    return (orig.state == _CLOSED and resp.state == _CLOSED) or _RESET in (orig.state, resp.state)
