"""Zeek's orientation rule for flows seen mid-stream (``likely_server_ports``, ``^``)."""

from __future__ import annotations

import socket

import pytest

from netwatch.flow.ports import LIKELY_SERVER_TCP, LIKELY_SERVER_UDP, flip_first

HOST = socket.inet_aton("10.0.0.2")
BCAST = socket.inet_aton("255.255.255.255")
MDNS = socket.inet_aton("224.0.0.251")
MCAST6 = socket.inet_pton(socket.AF_INET6, "ff02::fb")
SYN, ACK, FIN, RST, PSH = 0x02, 0x10, 0x01, 0x04, 0x08


@pytest.mark.parametrize(
    ("proto", "sport", "dport", "flags", "dst", "flip"),
    [
        (17, 67, 68, 0, HOST, True),  # a DHCP server's unicast reply seen first
        (17, 68, 67, 0, HOST, False),  # the client's request
        (17, 67, 68, 0, BCAST, False),  # a broadcast reply keeps its sender (Zeek's test)
        (17, 53, 40000, 0, HOST, True),  # a late DNS answer
        (17, 53, 5353, 0, HOST, False),  # both look like servers: keep the first sender
        (17, 5353, 5353, 0, MDNS, False),
        (17, 123, 40000, 0, MCAST6, False),  # multicast destination
        (17, 3544, 40000, 0, HOST, True),  # Teredo
        (17, 5072, 40000, 0, HOST, True),  # AYIYA
        (17, 40000, 32100, 0, HOST, False),  # ports Zeek does not know say nothing
        (6, 443, 46551, ACK, HOST, True),  # a server's ACK on a session the client opened
        (6, 443, 46551, FIN | ACK, HOST, True),  # ... or its FIN
        (6, 80, 40000, PSH | ACK, HOST, True),  # ... or its data
        (6, 80, 40000, SYN | ACK, HOST, True),  # a SYN-ACK from a server port
        (6, 443, 46551, SYN, HOST, False),  # a SYN names its client, whatever the ports
        (6, 80, 6669, ACK, HOST, True),  # both likely: the lower source port is the server
        (6, 6669, 80, ACK, HOST, False),
        (6, 80, 6669, SYN | ACK, HOST, False),  # both likely and a SYN-ACK: left alone
        (6, 53, 40000, ACK, HOST, True),  # DNS over TCP
        (6, 40000, 50000, RST, HOST, False),
        (1, 3, 3, 0, HOST, False),  # ICMP: oriented by its types elsewhere
    ],
)
def test_flip_first(proto: int, sport: int, dport: int, flags: int, dst: bytes, flip: bool) -> None:
    assert flip_first(proto, sport, dport, flags, dst) is flip


def test_ports_are_per_transport_as_in_zeek() -> None:
    assert {53, 67, 123, 3544, 5072, 5353} <= LIKELY_SERVER_UDP
    assert {22, 53, 80, 443, 8080} <= LIKELY_SERVER_TCP
    assert 68 not in LIKELY_SERVER_UDP and 554 not in LIKELY_SERVER_TCP
    assert 67 not in LIKELY_SERVER_TCP and 443 in LIKELY_SERVER_UDP  # DTLS
