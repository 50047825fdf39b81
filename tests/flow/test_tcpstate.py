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
    after_lone_syn_ack,
    closed_both,
    conn_state,
    is_closed,
    is_reuse,
    tcp_packet,
)

PSH = 0x08
# (who 'o'|'r', flags, seq, payload length[, ack[, payload captured in full]])
Seg = (
    tuple[str, int, int, int]
    | tuple[str, int, int, int, int]
    | tuple[str, int, int, int, int, bool]
)


def run(segments: list[Seg], win: int = 1024) -> tuple[Endpoint, Endpoint, str]:
    o, r = Endpoint(ORIG_LETTERS), Endpoint(RESP_LETTERS)
    hist: list[str] = []
    for seg in segments:
        who, flags, seq, n = seg[:4]
        ack = seg[4] if len(seg) > 4 else 0
        whole = seg[5] if len(seg) > 5 else True
        e, peer = (o, r) if who == "o" else (r, o)
        tcp_packet(e, peer, flags, seq, ack, win, n, whole, hist)
    return o, r, "".join(hist)


HANDSHAKE: list[Seg] = [
    ("o", SYN, 100, 0),
    ("r", SYN | ACK, 500, 0, 101),
    ("o", ACK, 101, 0, 501),
]


def test_full_connection_is_sf_with_zeek_history_and_seq_bytes() -> None:
    segs: list[Seg] = [
        *HANDSHAKE,
        ("o", PSH | ACK, 101, 40, 501),
        ("r", ACK, 501, 0, 141),
        ("r", PSH | ACK, 501, 1000, 141),
        ("o", FIN | ACK, 141, 0, 1501),
        ("r", FIN | ACK, 1501, 0, 142),
        ("o", ACK, 142, 0, 1502),
    ]
    o, r, hist = run(segs)
    assert hist == "ShADadFf"
    assert conn_state(o, r, hist) == "SF"
    assert (o.size(r), r.size(o)) == (40, 1000)
    assert (o.missed, r.missed) == (0, 0)
    assert is_closed(o, r) and closed_both(o, r)


@pytest.mark.parametrize(
    ("segments", "state"),
    [
        ([("o", SYN, 1, 0)], "S0"),
        ([("o", SYN, 1, 0), ("r", RST | ACK, 0, 0, 2)], "REJ"),
        (HANDSHAKE, "S1"),
        (HANDSHAKE[:2], "S1"),  # Zeek: the responder's SYN-ACK establishes both ends
        ([*HANDSHAKE, ("o", FIN | ACK, 101, 0, 501)], "S2"),
        ([*HANDSHAKE, ("r", FIN | ACK, 501, 0, 101)], "S3"),
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


def test_rst_after_fin_exchange_changes_nothing() -> None:
    segs: list[Seg] = [
        *HANDSHAKE,
        ("o", FIN | ACK, 101, 0, 501),
        ("r", FIN | ACK, 501, 0, 102),
        ("o", RST, 102, 0),
    ]
    o, r, hist = run(segs)
    assert conn_state(o, r, hist) == "SF"
    assert hist == "ShAFfR"


def test_fin_after_the_peers_fin_then_rst_is_a_normal_close() -> None:
    segs: list[Seg] = [*HANDSHAKE, ("o", FIN | ACK, 101, 0, 501), ("o", RST, 102, 0)]
    o, r, hist = run(segs)
    assert conn_state(o, r, hist) == "RSTO"
    segs.append(("r", FIN | ACK, 501, 0, 102))
    o, r, hist = run(segs)
    assert conn_state(o, r, hist) == "SF"


def test_gap_is_what_the_peer_acks_but_the_capture_never_had() -> None:
    segs: list[Seg] = [
        *HANDSHAKE,
        ("o", ACK, 101, 100, 501),
        ("o", ACK, 301, 100, 501),  # 201..300 never seen
        ("r", ACK, 501, 0, 401),
    ]
    o, r, hist = run(segs)
    assert o.missed == 100
    assert o.size(r) == 300
    assert "G" in hist


def test_reordered_segments_filled_before_the_ack_are_no_gap() -> None:
    segs: list[Seg] = [
        *HANDSHAKE,
        ("o", ACK, 201, 100, 501),  # arrives first
        ("o", ACK, 101, 100, 501),  # the hole, filled
        ("r", ACK, 501, 0, 301),
    ]
    o, _, hist = run(segs)
    assert o.missed == 0
    assert "G" not in hist


def test_payload_cut_by_the_snap_length_is_missed_once_acked() -> None:
    segs: list[Seg] = [*HANDSHAKE, ("o", ACK, 101, 474, 501, False), ("r", ACK, 501, 0, 575)]
    o, r, hist = run(segs)
    assert (o.missed, o.size(r)) == (474, 474)
    assert hist == "ShADaG"


def test_partial_connection_reports_no_gap() -> None:
    segs: list[Seg] = [("o", ACK, 101, 100, 900), ("r", ACK, 900, 0, 1101)]
    o, r, _ = run(segs)
    assert o.missed == 0
    assert o.size(r) == 1000  # acknowledged sequence space counts, as Zeek's size


def test_retransmission_letters_are_logarithmic() -> None:
    segs: list[Seg] = [*HANDSHAKE, ("o", ACK, 101, 10, 501)] + [("o", ACK, 101, 10, 501)] * 12
    o, r, hist = run(segs)
    assert o.retx == 12
    assert hist.count("T") == 2  # at the 1st and the 10th retransmission
    assert o.size(r) == 10


def test_sequence_wraparound_counts_bytes() -> None:
    start = 0xFFFFFF00
    segs: list[Seg] = [
        ("o", SYN, start, 0),
        ("r", SYN | ACK, 7, 0, start + 1),
        ("o", ACK, start + 1, 0, 8),
        ("o", ACK, start + 1, 1000, 8),
        ("o", ACK, (start + 1001) & 0xFFFFFFFF, 1000, 8),
        ("r", ACK, 8, 0, (start + 2001) & 0xFFFFFFFF),
    ]
    o, r, _ = run(segs)
    assert o.size(r) == 2000
    assert o.missed == 0


def test_zero_window_letter() -> None:
    _, _, hist = run([*HANDSHAKE, ("r", ACK, 501, 0, 101)], win=0)
    assert "W" in hist and "w" in hist


@pytest.mark.parametrize(("flags", "letter"), [(SYN | FIN, "Q"), (FIN | RST, "I")])
def test_multi_flag_segment_is_one_letter(flags: int, letter: str) -> None:
    _, _, hist = run([("o", flags, 1, 0)])
    assert hist == letter


def test_data_on_a_fin_records_only_the_fin() -> None:
    o, r, hist = run([*HANDSHAKE, ("o", FIN | ACK, 101, 20, 501)])
    assert hist == "ShAF"
    assert o.size(r) == 20


def test_new_syn_is_a_new_connection_after_a_close_or_with_another_isn() -> None:
    o, r, _ = run([("o", SYN, 1, 0), ("r", RST | ACK, 0, 0, 2)])
    assert is_reuse(o, r, SYN, 1)  # rejected: even the same ISN starts over
    o, r, _ = run([("o", SYN, 1, 0)])
    assert not is_reuse(o, r, SYN, 1)  # a retransmitted SYN
    assert is_reuse(o, r, SYN, 77)  # another ISN
    assert not is_reuse(o, r, SYN | ACK, 5)  # a SYN-ACK while the originator spoke


def test_lone_syn_ack_then_ack_calls_for_a_flip() -> None:
    o, r, hist = run([("o", SYN | ACK, 9, 0, 5)])
    assert hist == "H" and after_lone_syn_ack(o, r)
    o, r, _ = run(HANDSHAKE)
    assert not after_lone_syn_ack(o, r)
