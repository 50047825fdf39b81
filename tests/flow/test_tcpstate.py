"""Tests for Zeek-compatible TCP endpoint tracking, history letters and conn_state."""

from __future__ import annotations

import pytest

from netwatch.flow.tcpstate import (
    ACK,
    FIN,
    ORIG_LETTERS,
    RESP_LETTERS,
    RST,
    SYN,
    Endpoint,
    conn_state,
    is_closed,
    tcp_packet,
)

PSH = 0x08
Seg = tuple[str, int, int, int]  # (who 'o'|'r', flags, seq, payload length)


def run(segments: list[Seg], win: int = 1024) -> tuple[Endpoint, Endpoint, str]:
    o, r = Endpoint(ORIG_LETTERS), Endpoint(RESP_LETTERS)
    hist: list[str] = []
    for who, flags, seq, n in segments:
        if who == "o":
            tcp_packet(o, r, flags, seq, win, n, hist)
        else:
            tcp_packet(r, o, flags, seq, win, n, hist)
    return o, r, "".join(hist)


HANDSHAKE: list[Seg] = [("o", SYN, 100, 0), ("r", SYN | ACK, 500, 0), ("o", ACK, 101, 0)]


def test_full_connection_is_sf_with_zeek_history_and_seq_bytes() -> None:
    segs = [
        *HANDSHAKE,
        ("o", PSH | ACK, 101, 40),
        ("r", ACK, 501, 0),
        ("r", PSH | ACK, 501, 1000),
        ("o", FIN | ACK, 141, 0),
        ("r", FIN | ACK, 1501, 0),
        ("o", ACK, 142, 0),
    ]
    o, r, hist = run(segs)
    assert hist == "ShADadFf"
    assert conn_state(o, r, hist) == "SF"
    assert (o.size(), r.size()) == (40, 1000)
    assert is_closed(o, r)


@pytest.mark.parametrize(
    ("segments", "state"),
    [
        ([("o", SYN, 1, 0)], "S0"),
        ([("o", SYN, 1, 0), ("r", RST | ACK, 0, 0)], "REJ"),
        (HANDSHAKE, "S1"),
        ([*HANDSHAKE, ("o", FIN | ACK, 101, 0)], "S2"),
        ([*HANDSHAKE, ("r", FIN | ACK, 501, 0)], "S3"),
        ([*HANDSHAKE, ("o", RST, 101, 0)], "RSTO"),
        ([*HANDSHAKE, ("r", RST, 501, 0)], "RSTR"),
        ([("o", SYN, 1, 0), ("o", RST, 2, 0)], "RSTOS0"),
        ([("r", SYN | ACK, 9, 0), ("r", RST, 10, 0)], "RSTRH"),
        ([("o", SYN, 1, 0), ("o", FIN, 2, 0)], "SH"),
        ([("r", SYN | ACK, 9, 0), ("r", FIN, 10, 0)], "SHR"),
        ([("o", ACK, 1, 10), ("r", ACK, 5, 10)], "OTH"),
    ],
)
def test_conn_state_codes(segments: list[Seg], state: str) -> None:
    o, r, hist = run(segments)
    assert conn_state(o, r, hist) == state


def test_gap_counts_missed_bytes_and_g_letter() -> None:
    segs = [*HANDSHAKE, ("o", ACK, 101, 100), ("o", ACK, 301, 100)]  # 201..300 never seen
    o, _, hist = run(segs)
    assert o.missed == 100
    assert o.size() == 300
    assert "G" in hist


def test_retransmission_letters_are_logarithmic() -> None:
    segs = [*HANDSHAKE, ("o", ACK, 101, 10)] + [("o", ACK, 101, 10)] * 12
    o, _, hist = run(segs)
    assert o.retx == 12
    assert hist.count("T") == 2  # at the 1st and the 10th retransmission
    assert o.size() == 10


def test_sequence_wraparound_counts_bytes() -> None:
    start = 0xFFFFFF00
    segs = [
        ("o", SYN, start, 0),
        ("r", SYN | ACK, 7, 0),
        ("o", ACK, start + 1, 0),
        ("o", ACK, start + 1, 1000),
        ("o", ACK, (start + 1001) & 0xFFFFFFFF, 1000),
    ]
    o, _, _ = run(segs)
    assert o.size() == 2000
    assert o.missed == 0


def test_zero_window_letter() -> None:
    _, _, hist = run([*HANDSHAKE, ("r", ACK, 501, 0)], win=0)
    assert "W" in hist and "w" in hist


def test_multi_flag_syn_fin_is_q() -> None:
    _, _, hist = run([("o", SYN | FIN, 1, 0)])
    assert "Q" in hist
