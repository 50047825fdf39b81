"""A private network namespace with a veth pair, for live-capture tests.

Everything happens inside a namespace this module creates (``ip netns add``): a veth pair
``<prefix>a`` (where test traffic is injected) and ``<prefix>b`` (where netwatch captures),
links up, IPv6 and its automatic traffic (router solicitations, DAD, MLD) switched off and
no addresses assigned, so the kernel itself sends nothing that would show in a capture.
Loopback is up inside for the daemon's metrics endpoint. No traffic ever leaves the
namespace; it is deleted (with its interfaces) afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass


def netns_unavailable() -> str | None:
    """Why namespaces cannot be used here (None when they can)."""
    if os.geteuid() != 0:
        return "live-capture tests need root (network namespaces, AF_PACKET)"
    if shutil.which("ip") is None:
        return "iproute2 (ip) is not installed"
    probe = f"nwprobe{os.getpid()}"
    done = subprocess.run(["ip", "netns", "add", probe], capture_output=True, check=False)
    if done.returncode != 0:
        return f"cannot create a network namespace: {done.stderr.decode().strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, check=False)
    return None


@dataclass(frozen=True)
class Netns:
    name: str
    inject: str  # send test traffic here
    capture: str  # netwatch listens here

    def cmd(self, *args: str) -> list[str]:
        """``args`` run inside the namespace."""
        return ["ip", "netns", "exec", self.name, *args]

    def run(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(self.cmd(*args), capture_output=True, check=True, timeout=timeout)


def _ip(args: Sequence[str]) -> None:
    subprocess.run(["ip", *args], capture_output=True, check=True)


@contextmanager
def veth_namespace(prefix: str = "nw") -> Iterator[Netns]:
    """A fresh namespace with a veth pair (see the module docstring)."""
    name = f"{prefix}{os.getpid()}"
    ns = Netns(name, f"{prefix}a", f"{prefix}b")
    _ip(["netns", "add", name])
    try:
        ns.run("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
        ns.run("sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1")
        ns.run("ip", "link", "add", ns.inject, "type", "veth", "peer", "name", ns.capture)
        for link in ("lo", ns.inject, ns.capture):
            ns.run("ip", "link", "set", link, "up")
        yield ns
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
