"""Helpers for the monitoring-stack integration test: loopback ports, HTTP, managed processes.

Everything here talks to 127.0.0.1 only. :class:`Proc` starts a subprocess with its output
in a log file (whose tail goes into assertion messages) and stops it with SIGTERM, then
SIGKILL after a timeout, so a failing test never leaves a process behind.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

LOOPBACK = "127.0.0.1"
STOP_TIMEOUT_S = 15.0

T = TypeVar("T")


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        port: int = s.getsockname()[1]
        return port


def http_get(url: str, timeout: float = 3.0) -> tuple[int, bytes]:
    """``(status, body)`` of a GET; HTTP errors are returned, connection errors raise OSError."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return int(r.status), bytes(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def get_json(url: str, params: Mapping[str, str] | None = None, timeout: float = 5.0) -> Any:
    """The decoded JSON body of a successful GET (raises on a non-200 status)."""
    if params:
        url = f"{url}?{urllib.parse.urlencode(params)}"
    status, body = http_get(url, timeout)
    if status != 200:
        raise OSError(f"GET {url}: HTTP {status}: {body[:500]!r}")
    return json.loads(body)


def poll(check: Callable[[], T | None], timeout: float, interval: float = 0.25) -> T | None:
    """Call ``check`` until it returns something other than None (or ``timeout`` passes)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
        except OSError:
            result = None
        if result is not None or time.monotonic() >= deadline:
            return result
        time.sleep(interval)


class Proc:
    """A subprocess with its stdout and stderr in ``log``; stop it with :meth:`stop`."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log: Path,
        cwd: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log = log
        self._out = log.open("wb")
        try:
            self.popen = subprocess.Popen(
                self.argv,
                cwd=cwd,
                env=dict(env) if env is not None else None,
                stdin=subprocess.DEVNULL,
                stdout=self._out,
                stderr=subprocess.STDOUT,
            )
        except BaseException:
            self._out.close()
            raise

    def running(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of the process output, for assertion messages."""
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return f"--- {self.name} log tail ({self.log}) ---\n" + "\n".join(
            text.splitlines()[-lines:]
        )

    def wait(self, timeout: float) -> int | None:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM, wait up to ``timeout``, then SIGKILL; returns the exit code."""
        try:
            if self.popen.poll() is None:
                self.popen.send_signal(signal.SIGTERM)
                try:
                    self.popen.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.popen.kill()
                    self.popen.wait(timeout)
            return int(self.popen.returncode)
        finally:
            self._out.close()


def clean_env() -> dict[str, str]:
    """The test's environment without systemd's notification/watchdog variables."""
    drop = {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def wait_ready(proc: Proc, url: str, timeout: float) -> None:
    """Wait until ``url`` answers 200 while ``proc`` runs; raise with its log tail if not."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if not proc.running():
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}\n{proc.tail()}")
        try:
            status, body = http_get(url, timeout=2.0)
            if status == 200:
                return
            last = f"HTTP {status}: {body[:200]!r}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.1)
    raise RuntimeError(f"{proc.name} not ready at {url} after {timeout}s ({last})\n{proc.tail()}")
