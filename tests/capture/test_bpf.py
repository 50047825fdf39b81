"""Capture filters compiled by libpcap, checked against tcpdump and attached to real sockets."""

from __future__ import annotations

import contextlib
import ctypes.util
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Iterator

import pytest

from netwatch.capture import bpf
from netwatch.capture.bpf import BpfError, BpfInsn, attach_filter, compile_filter, lock_filter

TCPDUMP = shutil.which("tcpdump")
needs_tcpdump = pytest.mark.skipif(TCPDUMP is None, reason="tcpdump is not installed")

ETH_P_ALL = 0x0003

EXPRESSIONS = [
    "udp port 53",
    "tcp and host 10.0.0.1",
    "vlan and tcp",
    "ip6",
    "icmp or arp",
    "net 192.168.0.0/16 and not port 22",
    "ip6 and udp portrange 5000-6000",
    "tcp[tcpflags] & tcp-syn != 0",
    "ether host 00:11:22:33:44:55 or ether broadcast",
]


def tcpdump_program(expr: str, *options: str) -> tuple[BpfInsn, ...]:
    """``tcpdump -ddd -y EN10MB [options] expr``: count line, then "code jt jf k" lines.

    No ``-i``: with ``-d`` and ``-y`` but no interface, tcpdump compiles on a dead handle,
    like compile_filter. (With ``-i lo`` libpcap emits Linux-only VLAN loads for ``vlan``.)
    """
    assert TCPDUMP is not None
    done = subprocess.run(
        [TCPDUMP, "-ddd", "-y", "EN10MB", *options, expr],
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    )
    lines = done.stdout.split("\n")
    count = int(lines[0])
    rows = [tuple(int(field) for field in line.split()) for line in lines[1 : count + 1]]
    assert all(len(row) == 4 for row in rows)
    program = tuple(BpfInsn(*row) for row in rows)
    assert len(program) == count
    return program


@needs_tcpdump
@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_matches_tcpdump(expr: str) -> None:
    program = compile_filter(expr)
    assert program
    assert program == tcpdump_program(expr)


@needs_tcpdump
def test_matches_tcpdump_unoptimized_and_snaplen() -> None:
    expr = "tcp and host 10.0.0.1"
    unoptimized = compile_filter(expr, optimize=False)
    assert unoptimized == tcpdump_program(expr, "-O")
    assert unoptimized != compile_filter(expr)
    assert compile_filter(expr, snaplen=65_535) == tcpdump_program(expr, "-s", "65535")


def test_accept_returns_snaplen() -> None:
    assert compile_filter("ip", snaplen=1500)[-2:] == (BpfInsn(6, 0, 0, 1500), BpfInsn(6, 0, 0, 0))


@pytest.mark.parametrize("expr", ["", "   ", "\n\t"])
def test_empty_expression_is_no_filter(expr: str) -> None:
    assert compile_filter(expr) == ()


@pytest.mark.parametrize(
    ("expr", "libpcap_text"),
    [
        ("udp port", "syntax error"),
        ("tcp and and", "syntax error"),
        ("port 70000", "port"),
        ("net 10.0.0.1/40", "mask length"),
    ],
)
def test_bad_expression(expr: str, libpcap_text: str) -> None:
    with pytest.raises(BpfError) as info:
        compile_filter(expr)
    message = str(info.value)
    assert message.startswith("capture.bpf: ")
    assert libpcap_text in message
    # The handle is closed and the compiler state reset: a good expression still compiles.
    assert compile_filter("udp")


def test_refused_before_libpcap() -> None:
    with pytest.raises(BpfError, match=r"^capture\.bpf: expression is 65537 bytes long"):
        compile_filter("u" * (64 * 1024 + 1))
    with pytest.raises(BpfError, match="NUL"):
        compile_filter("udp\x00 or tcp")
    with pytest.raises(BpfError, match="not valid text"):
        compile_filter("udp \udcff")
    with pytest.raises(BpfError, match="snaplen"):
        compile_filter("udp", snaplen=0)


def test_missing_libpcap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    monkeypatch.setattr(bpf, "_LIBPCAP_NAMES", ("libpcap-does-not-exist.so.9",))
    with pytest.raises(BpfError, match=r"libpcap is not installed \(Debian: apt-get install"):
        bpf._open_libpcap()


def test_attach_empty_program_does_nothing() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        attach_filter(sock, ())
        lock_filter(sock)


def test_attach_checks_program() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        with pytest.raises(BpfError, match="at most 4096"):
            attach_filter(sock, [BpfInsn(6, 0, 0, 0)] * 4097)
        with pytest.raises(BpfError, match="instruction 1 is out of range"):
            attach_filter(sock, [BpfInsn(6, 0, 0, 0), BpfInsn(6, 256, 0, 0)])
        # Well-formed fields but no final "ret": the kernel's verifier refuses it.
        with pytest.raises(OSError):
            attach_filter(sock, [BpfInsn(0x28, 0, 0, 12)])


def test_lock_filter_on_udp_socket() -> None:
    """SO_LOCK_FILTER needs no privilege: after it the filter can no longer be swapped."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        attach_filter(sock, compile_filter("udp"))
        attach_filter(sock, compile_filter("tcp"))  # replacing is allowed before the lock
        lock_filter(sock)
        with pytest.raises(OSError):
            attach_filter(sock, compile_filter("ip or not ip"))


@contextlib.contextmanager
def packet_socket_on_lo() -> Iterator[socket.socket]:
    """An AF_PACKET socket that receives nothing yet (protocol 0); skip without privilege."""
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    except PermissionError:
        pytest.skip("AF_PACKET sockets need CAP_NET_RAW")
    with sock:
        yield sock


def udp_dst_port(frame: bytes) -> int | None:
    """Destination port of an Ethernet/IPv4/UDP frame, else None."""
    if len(frame) < 14 + 20 + 8 or frame[12:14] != b"\x08\x00":
        return None
    ihl = (frame[14] & 0x0F) * 4
    if frame[14 + 9] != 17:
        return None
    (port,) = struct.unpack_from("!H", frame, 14 + ihl + 2)
    return int(port)


def test_attach_to_packet_socket_filters_lo() -> None:
    with (
        packet_socket_on_lo() as capture,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as wanted,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender,
    ):
        wanted.bind(("127.0.0.1", 0))
        other.bind(("127.0.0.1", 0))
        port_p = wanted.getsockname()[1]
        port_q = other.getsockname()[1]

        # Attach before binding to a protocol, so no unfiltered packet is ever queued.
        attach_filter(capture, compile_filter(f"udp and dst port {port_p}", snaplen=65_535))
        lock_filter(capture)
        capture.bind(("lo", ETH_P_ALL))

        for n in range(3):
            sender.sendto(b"P%d" % n, ("127.0.0.1", port_p))
            sender.sendto(b"Q%d" % n, ("127.0.0.1", port_q))

        # Both datagram streams really went over lo.
        for sock in (wanted, other):
            sock.settimeout(1.0)
            for _ in range(3):
                sock.recv(64)

        ports: list[int | None] = []
        capture.settimeout(0.2)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            try:
                frame = capture.recv(65_535)
            except TimeoutError:
                break
            ports.append(udp_dst_port(frame))

        # lo shows each datagram to packet sockets twice (PACKET_OUTGOING, then PACKET_HOST): 6.
        assert 3 <= len(ports) <= 6
        assert set(ports) == {port_p}

        with pytest.raises(OSError):
            attach_filter(capture, compile_filter("udp"))
