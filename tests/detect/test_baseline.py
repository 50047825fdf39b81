"""Tests for the per-camera destination baselines."""

from __future__ import annotations

import socket
from pathlib import Path

from netwatch.detect.baseline import Baseline, destination_of


def test_destination_is_the_name_else_the_network() -> None:
    assert destination_of(socket.inet_aton("175.16.199.1"), None) == "175.16.199.0/24"
    assert destination_of(socket.inet_pton(socket.AF_INET6, "2001:218::1"), None) == (
        "2001:218::/48"
    )
    assert destination_of(socket.inet_aton("175.16.199.1"), "dev.ys7.com") == "dev.ys7.com"


def test_learning_then_new_once() -> None:
    b = Baseline(None, period_s=100)
    assert b.observe("cam", "a.example", 443, "tcp", 0.0) is False  # learning
    assert b.observe("cam", "b.example", 443, "tcp", 150.0) is True  # new after learning
    assert b.observe("cam", "b.example", 443, "tcp", 160.0) is False  # once
    assert b.observe("cam", "a.example", 443, "tcp", 170.0) is False  # learned
    assert b.observe("other", "b.example", 443, "tcp", 170.0) is False  # its own learning


def test_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "state" / "baseline.sqlite"
    b = Baseline(path, period_s=100)
    b.observe("cam", "a.example", 443, "tcp", 0.0)
    b.close()
    again = Baseline(path, period_s=100)
    assert again.observe("cam", "a.example", 443, "tcp", 500.0) is False
    assert again.observe("cam", "c.example", 443, "tcp", 500.0) is True
    again.close()


def test_bounded_per_device() -> None:
    b = Baseline(None, period_s=0, max_per_device=10)
    new = [b.observe("cam", f"{i}.example", 443, "tcp", 1.0) for i in range(50)]
    assert sum(new) == 10 and b.capped == 40 and len(b) == 10
