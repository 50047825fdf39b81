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
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.test_daemon import free_port


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


class LiveDaemon:
    """``netwatch run`` inside a namespace, as a context manager.

    The config is ``body`` plus the metrics address (loopback inside the namespace), a
    state directory and ``user: null`` (the tests run as root; privilege dropping is tested
    on its own); the log goes to ``tmp/daemon.log``. Entering waits until every interface
    in ``interfaces`` is captured; leaving sends SIGTERM and waits for the exit.
    """

    def __init__(self, ns: Netns, tmp: Path, body: str, interfaces: Sequence[str]) -> None:
        self.ns, self.tmp, self.interfaces = ns, tmp, tuple(interfaces)
        self.port = free_port()
        self.config = tmp / "live.yaml"
        self.config.write_text(
            body
            + f"metrics: {{listen: '127.0.0.1:{self.port}'}}\n"
            + f"state_dir: {tmp / 'state'}\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> LiveDaemon:
        with (self.tmp / "daemon.log").open("wb") as log:
            self.proc = subprocess.Popen(
                self.ns.cmd(sys.executable, "-m", "netwatch", "run", "-c", str(self.config)),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.wait(self._all_up, 30)
        return self

    def _all_up(self) -> bool:
        return all(self.metric("netwatch_capture_up", interface=n) == 1 for n in self.interfaces)

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode if self.proc is not None else None

    def metric(self, name: str, **labels: str) -> float | None:
        """One sample from the daemon's endpoint (None when absent or not answering)."""
        code = (
            "import urllib.request,sys;"
            f"sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:{self.port}/metrics',"
            "timeout=3).read().decode())"
        )
        try:
            text = self.ns.run(sys.executable, "-c", code, timeout=10).stdout.decode()
        except subprocess.CalledProcessError:
            return None
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        head = f"{name}{{{want}}} " if labels else f"{name} "
        for line in text.splitlines():
            if line.startswith(head):
                return float(line.rsplit(" ", 1)[1])
        return None

    def wait(self, check: Callable[[], bool], timeout: float = 20) -> None:
        """Poll ``check`` until it holds; fail with the log if the daemon exits or time runs out."""
        deadline = time.monotonic() + timeout
        while not check():
            assert self.proc is not None and self.proc.poll() is None, self.tail()
            assert time.monotonic() < deadline, self.tail()
            time.sleep(0.2)

    def tail(self) -> str:
        path = self.tmp / "daemon.log"
        return path.read_text()[-3000:] if path.exists() else ""
