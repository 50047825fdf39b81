"""TsharkSource: live capture on loopback through tshark, errors, and the JSON splitting.

The live tests start a real tshark on ``lo`` (a few seconds each); they are skipped when
tshark is missing or the test does not run as root.
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import threading
import time
from pathlib import Path

import pytest

from netwatch.capture.linktypes import LinkType
from netwatch.capture.pcap import Record
from netwatch.capture.tshark import (
    UNKNOWN_LINKTYPE,
    WTAP_TO_LINKTYPE,
    TsharkError,
    TsharkSource,
    _Parser,
)

TSHARK = shutil.which("tshark")
needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="live capture on lo needs root")
N = 200


def _tshark_pids() -> set[int]:
    """Every tshark/dumpcap process of this machine (from /proc)."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                comm = (entry / "comm").read_text().strip()
            except OSError:
                continue
            if comm in {"tshark", "dumpcap"}:
                pids.add(int(entry.name))
    return pids


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _udp_payload(frame: bytes) -> tuple[int, bytes]:
    """(destination port, payload) of an Ethernet/IPv4/UDP frame."""
    assert frame[12:14] == b"\x08\x00"
    ihl = (frame[14] & 0x0F) * 4
    assert frame[14 + 9] == 17
    udp = 14 + ihl
    dport, length = struct.unpack_from("!2xHH", frame, udp)
    return dport, frame[udp + 8 : udp + length]


@pytest.mark.tshark
@needs_tshark
@needs_root
def test_live_loopback_udp() -> None:
    before = _tshark_pids()
    port = _free_udp_port()
    src = TsharkSource(["lo"], bpf=f"udp and port {port}", max_batch=64, max_wait_s=0.1)
    payloads = [f"netwatch-{i:04d}-".encode() + bytes([i % 256]) * (i % 50) for i in range(N)]
    t_start = time.time()
    src.start()
    pid = src.tshark_pid
    assert pid is not None
    assert src.counts()["lo"].up

    got: list[Record] = []
    sizes: list[int] = []
    stop = threading.Event()
    failure: list[BaseException] = []

    def collect() -> None:
        try:
            for batch in src.batches(stop):
                sizes.append(len(batch))
                got.extend(batch)
        except BaseException as exc:  # pragma: no cover - reported below
            failure.append(exc)

    worker = threading.Thread(target=collect)
    worker.start()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for payload in payloads:
            s.sendto(payload, ("127.0.0.1", port))
    t_sent = time.time()
    deadline = time.monotonic() + 8
    while len(got) < N and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    worker.join(15)
    assert not worker.is_alive()
    assert not failure

    assert len(got) == N  # lo shows each datagram once; nothing else matches the filter
    assert max(sizes) <= 64
    assert 0 in sizes  # idle batches hand control back to the daemon
    seen = []
    for ts, linktype, wirelen, frame in got:
        assert linktype == LinkType.ETHERNET
        assert frame[:12] == bytes(12)  # lo: zero MACs
        assert wirelen == len(frame)
        assert t_start - 0.01 <= ts <= t_sent + 0.01
        dport, payload = _udp_payload(frame)
        assert dport == port
        seen.append(payload)
    assert seen == payloads
    counts = src.counts()
    assert set(counts) == {"lo"}
    assert counts["lo"].received >= N
    assert counts["lo"].dropped_kernel == 0
    assert src.packets == N
    assert not counts["lo"].up

    # tshark (and its dumpcap) are gone, and so is tshark's temporary directory
    assert not src.running
    assert src.tshark_pid is None
    assert not Path(f"/proc/{pid}").exists()
    assert _tshark_pids() <= before


@pytest.mark.tshark
@needs_tshark
@needs_root
def test_bad_interface_raises_readable_error() -> None:
    before = _tshark_pids()
    src = TsharkSource(["netwatch-no-such0"])
    t0 = time.monotonic()
    with pytest.raises(TsharkError, match=r"netwatch-no-such0.*does not exist"):
        next(iter(src.batches(threading.Event())))
    assert time.monotonic() - t0 < 10
    assert not src.running
    assert src.counts()["netwatch-no-such0"].errors == 1
    assert _tshark_pids() <= before


@pytest.mark.tshark
@needs_tshark
@needs_root
def test_bad_filter_raises_tsharks_message() -> None:
    src = TsharkSource(["lo"], bpf="udp and porrt 5")
    with pytest.raises(TsharkError, match="Invalid capture filter"):
        src.start()
    assert not src.running


def test_parser_splits_packets_at_their_closing_brace() -> None:
    one = b'{\n    "_source": {\n      "layers": {}\n    }\n  }'
    parser = _Parser()
    packet, rest = parser._extract_packet_from_data(b"[\n  " + one + b",\n  {\n    ")
    assert packet == one
    assert rest == b",\n  {\n    "
    # the last packet of a burst is complete without the next one's separator
    packet, rest = parser._extract_packet_from_data(b",\n  " + one)
    assert (packet, rest) == (one, b"")
    assert parser._extract_packet_from_data(b",\n  {\n    ") == (None, b",\n  {\n    ")


def test_wtap_mapping_and_arguments() -> None:
    assert WTAP_TO_LINKTYPE[1] == LinkType.ETHERNET
    assert WTAP_TO_LINKTYPE[25] == LinkType.LINUX_SLL
    assert UNKNOWN_LINKTYPE not in set(LinkType)
    with pytest.raises(ValueError, match="interface"):
        TsharkSource([])
    with pytest.raises(ValueError, match="positive"):
        TsharkSource(["lo"], max_batch=0)
    assert TsharkSource(["lo", "eth0"]).counts()["eth0"].received == 0
