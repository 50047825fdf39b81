"""sd_notify and the watchdog against a real AF_UNIX datagram socket standing in for systemd."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from netwatch.systemd import Notifier, Watchdog


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.settimeout(2)
    yield sock
    sock.close()


def test_messages_reach_the_socket(notify_socket: socket.socket, tmp_path: Path) -> None:
    notifier = Notifier.from_env({"NOTIFY_SOCKET": str(tmp_path / "notify")})
    assert notifier.send("READY=1", "STATUS=capturing")
    assert notify_socket.recv(4096) == b"READY=1\nSTATUS=capturing"


def test_abstract_namespace_address() -> None:
    name = f"netwatch-test-{id(object())}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        assert Notifier.from_env({"NOTIFY_SOCKET": "@" + name}).send("STOPPING=1")
        assert sock.recv(100) == b"STOPPING=1"


def test_without_notify_socket_nothing_is_sent() -> None:
    notifier = Notifier.from_env({})
    assert not notifier.enabled and not notifier.send("READY=1")
    assert Watchdog.from_env(notifier, {"WATCHDOG_USEC": "1000000"}).ping(0.0) is False


def test_a_gone_socket_is_reported_not_raised(tmp_path: Path) -> None:
    notifier = Notifier(str(tmp_path / "missing"))
    assert notifier.send("READY=1") is False
    assert notifier.send("READY=1") is False


def test_watchdog_pings_every_half_interval(notify_socket: socket.socket, tmp_path: Path) -> None:
    notifier = Notifier(str(tmp_path / "notify"))
    dog = Watchdog.from_env(notifier, {"WATCHDOG_USEC": "2000000"})
    assert dog.interval_s == 1.0
    assert [dog.ping(t) for t in (0.0, 0.5, 0.99, 1.0, 1.5, 2.2)] == [
        True,
        False,
        False,
        True,
        False,
        True,
    ]
    assert [notify_socket.recv(100) for _ in range(3)] == [b"WATCHDOG=1"] * 3


@pytest.mark.parametrize(
    ("env", "interval"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),  # another process's
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_reads_its_environment(env: dict[str, str], interval: float | None) -> None:
    assert Watchdog.from_env(Notifier("/x"), env).interval_s == interval
