"""Tests for the bidirectional flow table: keys, directions, timers, eviction, conservation."""

from __future__ import annotations

import random
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netwatch.decode.frames import FRAGMENT, NO_VLAN, Decoded
from netwatch.flow.ids import UidSource
from netwatch.flow.record import transport_summary
from netwatch.flow.table import Check, EndReason, Flow, FlowSettings, FlowTable, PyFlow
from netwatch.flow.tcpstate import ORIG_LETTERS, RESP_LETTERS, PyEndpoint, tcp_packet
from tests.profile import examples

A = socket.inet_aton("10.0.0.1")
B = socket.inet_aton("10.0.0.2")
C = socket.inet_aton("8.8.8.8")
SYN, ACK, FIN, RST = 0x02, 0x10, 0x01, 0x04


def udp(src: bytes, dst: bytes, sp: int, dp: int, n: int = 10) -> Decoded:
    return (src, dst, 17, sp, dp, 28 + n, 0, 0, 0, 0, 42, n, bytes(42 + n), 0, NO_VLAN)


def tcp(
    src: bytes, dst: bytes, sp: int, dp: int, flags: int, seq: int, n: int = 0, ack: int = 0
) -> Decoded:
    return (src, dst, 6, sp, dp, 40 + n, flags, seq, ack, 1000, 54, n, bytes(54 + n), 0, NO_VLAN)


class Collector:
    def __init__(self) -> None:
        self.ended: list[tuple[Flow, EndReason]] = []

    def __call__(self, f: Flow, reason: EndReason) -> None:
        self.ended.append((f, reason))


def make(**kw: float) -> tuple[FlowTable, Collector]:
    out = Collector()
    return FlowTable(FlowSettings(**kw), out, uids=UidSource(1)), out  # type: ignore[arg-type]


def test_both_directions_share_one_flow_and_orig_is_first_sender() -> None:
    table, out = make()
    table.packet(1.0, udp(B, A, 5000, 53))
    table.packet(1.1, udp(A, B, 53, 5000, 40))
    table.packet(1.2, udp(B, A, 5000, 53))
    assert len(table) == 1
    table.flush()
    ((f, reason),) = out.ended
    assert reason is EndReason.END_OF_INPUT
    assert (f.orig_h, f.orig_p, f.resp_h, f.resp_p) == (B, 5000, A, 53)
    assert (f.o_pkts, f.r_pkts, f.o_bytes, f.r_bytes) == (2, 1, 20, 40)
    assert (f.o_ipb, f.r_ipb) == (76, 68)


def test_syn_ack_first_flips_direction() -> None:
    table, out = make()
    table.packet(1.0, tcp(B, A, 80, 4000, SYN | ACK, 10))
    table.packet(1.1, tcp(A, B, 4000, 80, ACK, 1, 5))
    table.flush()
    f, _ = out.ended[0]
    assert (f.orig_h, f.orig_p) == (A, 4000)
    assert "".join(f.hist or []).startswith("h^") or "^" in "".join(f.hist or [])
    assert (f.o_pkts, f.r_pkts) == (1, 1)


def test_lone_syn_ack_between_ports_that_say_nothing_keeps_its_sender() -> None:
    """Zeek: a SYN-ACK nobody follows up may be a stealth scan; its sender stays orig."""
    table, out = make()
    table.packet(1.0, tcp(B, A, 40000, 50000, SYN | ACK, 10))
    table.flush()
    f, _ = out.ended[0]
    assert (f.orig_h, f.orig_p, f.hist) == (B, 40000, ["H"])


def test_ack_after_lone_syn_ack_flips_with_caret_first() -> None:
    """Zeek (since 5.1): an ACK or data after a lone SYN-ACK flips the connection."""
    table, out = make()
    table.packet(1.0, tcp(B, A, 40000, 50000, SYN | ACK, 10))
    table.packet(1.1, tcp(A, B, 50000, 40000, ACK, 1, 5))
    table.flush()
    f, _ = out.ended[0]
    assert (f.orig_h, f.orig_p, "".join(f.hist or [])) == (A, 50000, "^hD")
    assert (f.o_pkts, f.r_pkts, transport_summary(f)[0]) == (1, 1, 5)


def test_server_fin_first_is_oriented_client_to_server_with_caret() -> None:
    """The sensor missed the handshake: the server's FIN on the client's session comes first."""
    table, out = make()
    table.packet(1.0, tcp(C, A, 443, 46551, FIN | ACK, 500))
    table.packet(1.1, tcp(A, C, 46551, 443, ACK, 90))
    table.packet(1.2, tcp(A, C, 46551, 443, ACK, 90, 300))  # the client's data after it
    table.flush()
    ((f, _),) = out.ended
    assert (f.orig_h, f.orig_p, f.resp_h, f.resp_p) == (A, 46551, C, 443)
    assert "".join(f.hist or ()) == "^fAD"
    assert (f.o_pkts, f.r_pkts, *transport_summary(f)[:2]) == (2, 1, 300, 0)


def test_mid_stream_upload_from_a_client_port_keeps_the_client_as_originator() -> None:
    """A client's data first (its port says nothing) is not flipped: it is the upload it is."""
    table, out = make()
    for i in range(5):
        table.packet(1.0 + i, tcp(A, C, 46551, 443, ACK, 1000 + 1000 * i, 1000))
    table.packet(6.0, tcp(C, A, 443, 46551, ACK, 9))
    table.flush()
    ((f, _),) = out.ended
    assert (f.orig_h, f.orig_p, *transport_summary(f)[:2]) == (A, 46551, 5000, 0)
    assert "".join(f.hist or ()) == "Da"


def test_udp_server_reply_first_is_flipped_with_caret_in_history() -> None:
    table, out = make()
    table.packet(1.0, udp(C, A, 53, 40000, 60))  # a late DNS answer, the query unseen
    table.packet(1.1, udp(A, C, 40000, 53, 30))
    table.flush()
    ((f, _),) = out.ended
    assert (f.orig_h, f.orig_p, f.o_bytes, f.r_bytes) == (A, 40000, 30, 60)
    assert transport_summary(f)[3:] == ("SF", "^dD")  # the letters in the order they came


def test_a_flipped_flow_is_flipped_once_for_every_later_packet() -> None:
    table, out = make()
    table.packet(1.0, tcp(C, A, 80, 40000, SYN | ACK, 10))  # the ports flip it at creation
    table.packet(1.1, tcp(A, C, 40000, 80, ACK, 1))
    table.flush()
    ((f, _),) = out.ended
    assert (f.orig_h, f.orig_p, f.hist) == (A, 40000, ["^", "h", "A"])


def test_idle_timeouts_per_protocol_on_packet_time() -> None:
    table, out = make(udp_idle_s=60, tcp_idle_s=300)
    table.packet(0.0, udp(A, C, 1000, 5000))
    table.packet(0.0, tcp(A, C, 1001, 443, ACK, 1, 10))
    table.packet(59.0, udp(B, C, 1, 2))  # keeps time moving
    assert len(out.ended) == 0
    table.packet(61.0, udp(B, C, 1, 2))
    assert [f.orig_p for f, r in out.ended if r is EndReason.IDLE] == [1000]
    table.packet(301.0, udp(B, C, 1, 2))  # the 1 -> 2 flow (last seen at 61) expires too
    assert {f.orig_p for f, r in out.ended if r is EndReason.IDLE} == {1000, 1001, 1}


def test_activity_postpones_idle_timeout() -> None:
    table, out = make(udp_idle_s=10)
    for t in range(0, 100, 5):
        table.packet(float(t), udp(A, C, 1000, 53))
    assert out.ended == []
    assert len(table) == 1


def test_tcp_close_lingers_then_ends() -> None:
    table, out = make(tcp_closed_s=5)
    table.packet(0.0, tcp(A, C, 1000, 80, SYN, 1))
    table.packet(0.1, tcp(C, A, 80, 1000, SYN | ACK, 9))
    table.packet(0.2, tcp(A, C, 1000, 80, FIN | ACK, 2))
    table.packet(0.3, tcp(C, A, 80, 1000, FIN | ACK, 10))
    table.packet(3.0, udp(B, C, 1, 2))
    assert out.ended == []
    table.packet(6.0, udp(B, C, 1, 2))
    assert [r for _, r in out.ended] == [EndReason.TCP_CLOSED]


def test_active_timeout_splits_long_flows() -> None:
    table, out = make(active_timeout_s=100, udp_idle_s=60)
    for t in range(0, 400, 10):
        table.packet(float(t), udp(A, C, 1000, 5000))
    table.flush()
    reasons = [r for _, r in out.ended]
    # checked when the idle timer comes due: ends at t=120, 250 and 380
    assert reasons.count(EndReason.ACTIVE) == 3
    assert sum(f.o_pkts for f, _ in out.ended) == 40
    assert len({f.uid for f, _ in out.ended}) == 4
    assert all(f.duration <= 100 + 60 for f, _ in out.ended)


def test_max_flows_evicts_the_longest_idle_and_counts_it() -> None:
    table, out = make(max_flows=100, udp_idle_s=1000)
    for i in range(100):
        table.packet(float(i), udp(A, C, 1000 + i, 5000))
    table.packet(100.0, udp(A, C, 1000, 5000))  # refresh the oldest
    table.packet(101.0, udp(A, C, 5000, 5000))  # a new flow: someone must go
    assert len(table) == 100
    ((f, reason),) = out.ended
    assert reason is EndReason.EVICTED and f.orig_p == 1001
    assert table.ended["evicted"] == 1


def test_later_fragments_count_without_tcp_state() -> None:
    table, out = make()
    table.packet(0.0, tcp(A, C, 1000, 80, SYN, 1))
    frag = (A, C, 6, 1000, 80, 500, FRAGMENT, 0, 0, 0, -1, 480, b"", -1, NO_VLAN)
    table.packet(0.1, frag)
    table.flush()
    f, _ = out.ended[0]
    assert f.o_pkts == 2 and f.o_ipb == 540


def test_icmp_echo_request_and_reply_pair() -> None:
    table, out = make()
    req = (A, C, 1, 8, 0, 84, 0, 0, 0, 0, 38, 60, bytes(98), 0, NO_VLAN)
    rep = (C, A, 1, 0, 0, 84, 0, 0, 0, 0, 38, 60, bytes(98), 0, NO_VLAN)
    table.packet(0.0, req)
    table.packet(0.1, rep)
    table.flush()
    ((f, _),) = out.ended
    assert (f.orig_p, f.resp_p, f.o_pkts, f.r_pkts) == (8, 0, 1, 1)


@settings(max_examples=examples(200), deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([A, B, C]),
            st.sampled_from([A, B, C]),
            st.sampled_from([6, 17]),
            st.integers(0, 3),
            st.integers(0, 3),
            st.floats(0, 1000, allow_nan=False),
        ),
        max_size=200,
    ),
    st.integers(1, 8),
)
def test_packets_are_conserved(
    pkts: list[tuple[bytes, bytes, int, int, int, float]], max_flows: int
) -> None:
    table, out = make(max_flows=max_flows, udp_idle_s=50, tcp_idle_s=70)
    for s, d, proto, sp, dp, t in sorted(pkts, key=lambda p: p[5]):
        if proto == 6:
            table.packet(t, tcp(s, d, sp, dp, ACK, 1, 1))
        else:
            table.packet(t, udp(s, d, sp, dp))
    table.flush()
    assert sum(f.o_pkts + f.r_pkts for f, _ in out.ended) == len(pkts)
    assert len(table) == 0
    for f, _ in out.ended:
        # the key is the same in both directions
        assert f.key == (
            min((f.orig_h, f.orig_p), (f.resp_h, f.resp_p))[0],
            max((f.orig_h, f.orig_p), (f.resp_h, f.resp_p))[0],
            min((f.orig_h, f.orig_p), (f.resp_h, f.resp_p))[1],
            max((f.orig_h, f.orig_p), (f.resp_h, f.resp_p))[1],
            f.proto,
        )


def test_a_packet_after_the_idle_timeout_starts_a_new_flow() -> None:
    table, out = make(udp_idle_s=60)
    table.packet(0.0, udp(A, C, 1000, 53))
    table.packet(100.0, udp(A, C, 1000, 53))  # the timer is due before this packet counts
    assert [(f.o_pkts, r) for f, r in out.ended] == [(1, EndReason.IDLE)]
    table.flush()
    assert [f.first for f, _ in out.ended] == [0.0, 100.0]


def test_a_packet_after_the_close_linger_starts_a_new_flow() -> None:
    table, out = make(tcp_closed_s=5)
    table.packet(0.0, tcp(A, C, 1000, 80, SYN, 1))
    table.packet(0.1, tcp(C, A, 80, 1000, SYN | ACK, 9))
    table.packet(0.2, tcp(A, C, 1000, 80, FIN | ACK, 2))
    table.packet(0.3, tcp(C, A, 80, 1000, FIN | ACK, 10))
    table.packet(20.0, tcp(A, C, 1000, 80, SYN, 500))  # port reuse after the linger
    assert [r for _, r in out.ended] == [EndReason.TCP_CLOSED]
    table.flush()
    assert [f.o_pkts + f.r_pkts for f, _ in out.ended] == [4, 1]


def test_a_new_syn_after_a_reject_is_a_new_connection() -> None:
    """Zeek logs each rejected attempt on the same 5-tuple as its own connection."""
    table, out = make()
    for t in (0.0, 0.5, 1.0):
        table.packet(t, tcp(A, C, 1000, 110, SYN, 7))
        table.packet(t + 0.05, tcp(C, A, 110, 1000, RST | ACK, 0, ack=8))
    table.flush()
    assert [transport_summary(f)[3:] for f, _ in out.ended] == [("REJ", "Sr")] * 3
    assert [(f.o_pkts, f.r_pkts) for f, _ in out.ended] == [(1, 1)] * 3


def test_the_clock_stops_once_both_sides_closed() -> None:
    table, out = make()
    table.packet(0.0, tcp(A, C, 1000, 80, SYN, 1))
    table.packet(0.1, tcp(C, A, 80, 1000, SYN | ACK, 9, ack=2))
    table.packet(0.2, tcp(A, C, 1000, 80, FIN | ACK, 2, ack=10))
    table.packet(0.3, tcp(C, A, 80, 1000, FIN | ACK, 10, ack=3))
    table.packet(0.9, tcp(A, C, 1000, 80, ACK, 3, ack=11))  # counted, but no longer timed
    table.packet(1.0, tcp(A, C, 1000, 80, RST, 3))  # after the FIN exchange: still SF
    table.flush()
    ((f, _),) = out.ended
    assert round(f.duration, 6) == 0.3
    assert (f.o_pkts, f.r_pkts) == (4, 2)
    assert transport_summary(f)[3] == "SF"


def test_a_reset_connection_ends_a_fixed_delay_after_the_reset() -> None:
    table, out = make(tcp_closed_s=5)
    table.packet(0.0, tcp(A, C, 1000, 80, ACK, 1, 10))
    table.packet(0.1, tcp(C, A, 80, 1000, RST, 9))
    table.packet(3.0, tcp(A, C, 1000, 80, ACK, 11, 10))  # does not postpone the end
    table.packet(5.2, udp(B, C, 1, 2))
    assert [r for _, r in out.ended] == [EndReason.TCP_CLOSED]


def test_an_unanswered_syn_ends_after_the_attempt_delay() -> None:
    table, out = make(tcp_attempt_s=5)
    table.packet(0.0, tcp(A, C, 1000, 80, SYN, 1))
    table.packet(3.0, tcp(A, C, 1000, 80, SYN, 1))  # a retransmission: same attempt
    table.packet(9.0, tcp(A, C, 1000, 80, SYN, 1))  # after the attempt ended: a new one
    table.flush()
    assert [(f.o_pkts, r) for f, r in out.ended] == [
        (2, EndReason.TCP_CLOSED),
        (1, EndReason.END_OF_INPUT),
    ]


def test_a_fin_as_an_endpoints_first_segment_ends_after_the_partial_close_delay() -> None:
    table, out = make(tcp_partial_close_s=3)
    table.packet(0.0, tcp(A, C, 40000, 50000, ACK, 1, 10))
    table.packet(0.5, tcp(C, A, 50000, 40000, FIN | ACK, 9, ack=11))
    table.packet(2.0, tcp(A, C, 40000, 50000, ACK, 11, 10))
    assert out.ended == []
    table.packet(3.6, udp(B, C, 1, 2))
    assert [r for _, r in out.ended] == [EndReason.TCP_CLOSED]


def test_dns_flows_end_on_zeeks_dns_timeout() -> None:
    table, out = make(dns_idle_s=10, udp_idle_s=60)
    table.packet(0.0, udp(A, C, 40000, 53))
    table.packet(0.1, udp(C, A, 53, 40000))
    table.packet(9.5, udp(B, C, 41000, 53))  # another flow, at 9.5: checked at 19.5 first
    table.packet(10.5, udp(B, C, 1, 2))
    assert [f.orig_p for f, _ in out.ended] == [40000]  # checked at 10: idle 9.9 s
    table.packet(19.0, udp(B, C, 41000, 53))
    table.packet(25.0, udp(B, C, 41000, 53))
    table.packet(30.0, udp(B, C, 1, 2))
    assert [f.orig_p for f, _ in out.ended] == [40000]  # at 19.5 and 29.5: idle < 9 s
    table.packet(40.0, udp(B, C, 1, 2))
    assert [f.orig_p for f, _ in out.ended] == [40000, 41000]


def test_icmp_resp_p_is_the_counterpart_type_or_the_code() -> None:
    table, out = make()
    ns = (A, C, 58, 135, 0, 72, 0, 0, 0, 0, 62, 24, bytes(86), 0, NO_VLAN)
    unreach = (C, A, 1, 3, 3, 56, 0, 0, 0, 0, 42, 28, bytes(70), 0, NO_VLAN)
    unreach_port = (C, A, 1, 3, 4, 56, 0, 0, 0, 0, 42, 28, bytes(70), 0, NO_VLAN)
    table.packet(0.0, ns)
    table.packet(0.1, unreach)
    table.packet(0.2, unreach_port)  # another code: another connection, as Zeek keys them
    table.flush()
    got = sorted((f.orig_p, f.resp_p) for f, _ in out.ended)
    assert got == [(3, 3), (3, 4), (135, 136)]


def test_empty_udp_datagrams_are_in_the_history() -> None:
    table, out = make()
    table.packet(0.0, udp(A, C, 40000, 5000, 0))
    table.flush()
    ((f, _),) = out.ended
    assert transport_summary(f) == (0, 0, 0, "S0", "D")


def test_other_ip_protocols_carry_no_byte_counts() -> None:
    table, out = make()
    table.packet(0.0, (A, C, 132, 0, 0, 120, 0, 0, 0, 0, 34, 100, bytes(134), 0, NO_VLAN))
    table.flush()
    ((f, _),) = out.ended
    assert transport_summary(f) == (0, 0, 0, "OTH", "")
    assert f.o_pkts == 1


def test_a_timer_runs_at_its_time_not_at_the_next_periodic_sweep() -> None:
    table, out = make(tcp_closed_s=5, sweep_interval_s=1.0)
    table.packet(0.0, tcp(A, C, 1000, 80, ACK, 1, 10))
    table.packet(0.1, tcp(C, A, 80, 1000, RST, 9))  # the removal is due at 5.1
    table.packet(4.6, udp(B, C, 1, 2))  # a periodic sweep at 4.6, the next one at 5.6
    table.packet(5.2, tcp(A, C, 1000, 80, ACK, 11, 10))  # a new (partial) connection
    assert [(f.o_pkts, r) for f, r in out.ended] == [(1, EndReason.TCP_CLOSED)]


def _slots(e: object) -> dict[str, str]:
    """Every attribute of an endpoint, as repr (int and float differ)."""
    return {name: repr(getattr(e, name)) for name in PyEndpoint.__slots__}


@pytest.mark.parametrize("seq", [0, 1, 2**31 - 1, 2**31, 2**32 - 2, 2**32 - 1])
@pytest.mark.parametrize(
    ("flags", "n", "win"),
    [
        (SYN, 0, 1000),  # the shortcut's case
        (SYN | 0x08 | 0x40 | 0x80, 0, 1000),  # PSH, ECE, CWR: still a bare SYN
        (SYN, 0, 0),  # zero window: tcp_packet's
        (SYN, 5, 1000),  # SYN with data: tcp_packet's
        (SYN | ACK, 0, 1000),
        (SYN | FIN, 0, 1000),
        (SYN | RST, 0, 1000),
        (ACK, 0, 1000),
    ],
)
@pytest.mark.parametrize("flipped", [False, True])
def test_a_flows_first_segment_is_what_tcp_packet_makes_of_fresh_endpoints(
    seq: int, flags: int, n: int, win: int, flipped: bool
) -> None:
    """The first segment's shortcut (an originator's bare SYN) leaves both endpoints, the
    history and the attempt timer as the reference tcp_packet on fresh endpoints does."""
    table, _ = make()
    sp, dp = (80, 40000) if flipped else (40000, 80)  # a non-SYN from port 80 is flipped
    d = (A, B, 6, sp, dp, 40 + n, flags, seq, 77, win, 54, n, bytes(54 + n), 0, NO_VLAN)
    f = table.packet(1.0, d)
    assert f.tcp is not None and f.hist is not None
    o, r = PyEndpoint(ORIG_LETTERS), PyEndpoint(RESP_LETTERS)
    is_orig = f.odir is (A < B)
    hist = ["^"] if f.hist[:1] == ["^"] else []
    if is_orig:
        tcp_packet(o, r, flags, seq, 77, win, n, True, hist)
    else:
        tcp_packet(r, o, flags, seq, 77, win, n, True, hist)
    assert (_slots(f.tcp[0]), _slots(f.tcp[1]), f.hist) == (_slots(o), _slots(r), hist)
    attempt = is_orig and bool(flags & SYN) and o.state in (1, 2)
    assert [e[2:] for e in table._attempts] == ([(f, Check.ATTEMPT)] if attempt else [])


def _state(table: FlowTable, calls: list[tuple[object, ...]]) -> str:
    """Every attribute of every flow and endpoint, the timer heaps, the counts and the
    callbacks' calls so far, as text (repr: int and float told apart)."""
    flows = []
    for f in sorted(table.flows.values(), key=lambda fl: fl.uid):
        attrs = {name: getattr(f, name, None) for name in PyFlow.__slots__}
        if f.tcp is not None:
            attrs["tcp"] = [_slots(e) for e in f.tcp]
        flows.append(sorted(attrs.items()))
    heaps = (
        {k: [(t, n, f.uid) for t, n, f in h] for k, h in table._heaps.items()},
        [(t, n, f.uid) for t, n, f in table._closed],
        [(t, n, f.uid, c) for t, n, f, c in table._checks],
        [(t, n, f.uid, c) for t, n, f, c in table._attempts],
    )
    return repr((flows, heaps, table.next_sweep, table.created, table.ended, calls))


def _random_packet(rng: random.Random, hosts: list[bytes]) -> Decoded:
    """A TCP, UDP, ICMP or fragment packet between a few hosts and ports."""
    src, dst = rng.choice(hosts), rng.choice(hosts)
    kind = rng.random()
    n = rng.choice([0, 0, 5, 300])
    mac = rng.choice([0, -1])
    vlan = rng.choice([NO_VLAN, 7])
    frame = bytes(rng.randrange(256) for _ in range(12)) + bytes(42 + n)
    if kind < 0.45:
        sp, dp = rng.choice([40000, 40001, 80, 443, 22]), rng.choice([80, 443, 40000, 8080])
        flags = rng.choice([SYN, SYN, SYN | ACK, ACK, ACK | 0x08, FIN | ACK, RST, SYN | FIN])
        seq, win = rng.choice([0, 1000, 2**32 - 1]), rng.choice([0, 1000])
        off = rng.choice([54, 54, -1])
        return (src, dst, 6, sp, dp, 40 + n, flags, seq, 5, win, off, n, frame, mac, vlan)
    if kind < 0.85:
        sp, dp = rng.choice([53, 5353, 123, 5000, 1900]), rng.choice([53, 5000, 137, 5355])
        return (src, dst, 17, sp, dp, 28 + n, 0, 0, 0, 0, 42, n, frame, mac, vlan)
    if kind < 0.95:
        proto = rng.choice([1, 58])
        sp, dp = rng.choice([8, 0, 3, 128, 129, 135]), rng.choice([0, 1, 2])
        return (src, dst, proto, sp, dp, 28 + n, 0, 0, 0, 0, 42, n, frame, mac, vlan)
    proto = rng.choice([6, 17])
    return (src, dst, proto, 0, 0, 20 + n, FRAGMENT, 0, 0, 0, -1, n, frame, mac, vlan)


@pytest.mark.parametrize("seed", range(25))
def test_first_packet_does_what_packet_does_for_a_packet_of_no_flow(seed: int) -> None:
    """``first_packet`` (the C loop's NEW hand-back: no flow has the key, before the next
    sweep) leaves the table, its timers and the callbacks' calls as ``packet`` does, after
    every packet; ICMP and fragments fall back to ``packet``."""
    rng = random.Random(seed)
    hosts = [A, B, C, socket.inet_aton("224.0.0.251")]
    settings = FlowSettings(max_flows=rng.choice([3, 1000]), max_payload_packets=2)
    tables, logs = [], []
    for _ in range(2):
        calls: list[tuple[object, ...]] = []

        def inspect(
            f: Flow,
            is_orig: bool,
            frame: bytes,
            off: int,
            n: int,
            ts: float,
            calls: list[tuple[object, ...]] = calls,
        ) -> None:
            calls.append(("inspect", f.uid, is_orig, off, n, ts))

        def on_start(f: Flow, ts: float, calls: list[tuple[object, ...]] = calls) -> None:
            calls.append(("start", f.uid, ts, f.o_pkts, f.r_pkts))

        def on_end(f: Flow, reason: EndReason, calls: list[tuple[object, ...]] = calls) -> None:
            calls.append(("end", f.uid, reason))

        tables.append(
            FlowTable(settings, on_end, inspect=inspect, on_start=on_start, uids=UidSource(seed))
        )
        logs.append(calls)
    general, first = tables
    ts = 1.0
    firsts = 0
    for _ in range(300):
        ts += rng.choice([0.0, 0.001, 0.5, 4.0, 12.0])
        d = _random_packet(rng, hosts)
        src, dst, proto, sp, dp = d[:5]
        key = (src, dst, sp, dp, proto) if (src, sp) <= (dst, dp) else (dst, src, dp, sp, proto)
        general.packet(ts, d)
        if (key not in first.flows and ts < first.next_sweep) or proto in (1, 58):
            firsts += 1
            first.first_packet(ts, d)
        else:
            first.packet(ts, d)
        assert _state(first, logs[1]) == _state(general, logs[0])
    assert firsts > 30
    general.flush()
    first.flush()
    assert _state(first, logs[1]) == _state(general, logs[0])


def test_on_start_sees_the_first_packet_counted_before_its_payload_is_inspected() -> None:
    """``on_start`` runs once the first packet is counted (counters, endpoints, history,
    timers), and before the deep parsers see its payload: on ``packet`` (a new flow and a
    reused 5-tuple) and on ``first_packet`` alike (the compiled core's new flows too)."""
    calls: list[tuple[object, ...]] = []

    def on_start(f: Flow, ts: float) -> None:
        tcp = None if f.tcp is None else f.tcp[0].state
        hist = None if f.hist is None else list(f.hist)
        calls.append(("start", ts, f.o_pkts, f.r_pkts, f.o_bytes, f.r_ipb, tcp, hist))

    def inspect(f: Flow, is_orig: bool, frame: bytes, off: int, n: int, ts: float) -> None:
        calls.append(("inspect", ts, n))

    table = FlowTable(FlowSettings(), Collector(), inspect=inspect, on_start=on_start)
    table.packet(1.0, udp(B, A, 5000, 53))
    table.first_packet(2.0, udp(B, A, 5001, 53, 7))
    table.first_packet(3.0, udp(A, B, 53, 5002, 4))  # flipped by its ports
    table.packet(4.0, tcp(A, B, 4000, 80, SYN, 10))
    table.packet(4.1, tcp(B, A, 80, 4000, RST | ACK, 0, ack=11))
    table.packet(4.2, tcp(A, B, 4000, 80, SYN, 99))  # a new connection on the 5-tuple
    assert calls == [
        ("start", 1.0, 1, 0, 10, 0, None, None),
        ("inspect", 1.0, 10),
        ("start", 2.0, 1, 0, 7, 0, None, None),
        ("inspect", 2.0, 7),
        ("start", 3.0, 0, 1, 0, 32, None, ["^"]),
        ("inspect", 3.0, 4),
        ("start", 4.0, 1, 0, 0, 0, 1, ["S"]),
        ("start", 4.2, 1, 0, 0, 0, 1, ["S"]),
    ]


def test_port_roles_are_the_port_sets_and_core_new_flows_needs_the_c_types(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from netwatch.flow import table as flow_table  # noqa: PLC0415 (the module's globals)
    from netwatch.flow.ports import LIKELY_SERVER_TCP, LIKELY_SERVER_UDP  # noqa: PLC0415

    roles = flow_table._PORT_ROLES
    assert len(roles) == 65536
    for port, role in enumerate(roles):
        want = (port in LIKELY_SERVER_TCP) | (port in LIKELY_SERVER_UDP) << 1
        assert role == want | (port in flow_table.DNS_UDP_PORTS) << 2, port
    table, _ = make()
    items = table.core_new_flows()
    if flow_table._C_FLOW is None:  # the pure path: nothing for C
        assert items is None
        return
    assert items is not None and len(items) == 19 and items[18] is table.flows
    assert (items[0], items[1], items[6], items[17]) == (table, Flow, table._idle_heap, roles)
    monkeypatch.setattr(flow_table, "Flow", PyFlow)
    assert make()[0].core_new_flows() is None
