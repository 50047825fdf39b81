"""systemd integration without a dependency: ``sd_notify`` messages and the watchdog.

:class:`Notifier` sends state strings (``READY=1``, ``STATUS=...``, ``WATCHDOG=1``, ...) as
one datagram to the AF_UNIX socket named in ``$NOTIFY_SOCKET`` (a leading ``@`` is the
abstract namespace); without it every call does nothing. :class:`Watchdog` reads
``$WATCHDOG_USEC`` (and ``$WATCHDOG_PID``: the watchdog is for this process only when it
names it) and pings every half interval, as sd_watchdog_enabled(3) recommends. The daemon
pings from its capture loop, not from a side thread, so a stalled loop is restarted.

Config read: none (the environment systemd sets). Known limit: a notification that cannot
be sent is logged once per message kind and otherwise ignored.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


class Notifier:
    """Sends sd_notify messages to ``address`` (None: disabled)."""

    def __init__(self, address: str | None) -> None:
        self.address = address
        self._failed: set[str] = set()
        self.sent = 0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        env = os.environ if environ is None else environ
        target = env.get("NOTIFY_SOCKET") or None
        if target is not None and target.startswith("@"):
            target = "\0" + target[1:]
        return cls(target)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *lines: str) -> bool:
        """Send the lines as one message; True when it went out."""
        if self.address is None:
            return False
        message = "\n".join(lines).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto(message, self.address)
        except OSError as exc:
            kind = lines[0].split("=", 1)[0] if lines else ""
            if kind not in self._failed:
                self._failed.add(kind)
                log.warning("sd_notify %s failed: %s", kind, exc.strerror or exc)
            return False
        self.sent += 1
        return True


class Watchdog:
    """Pings ``WATCHDOG=1`` every ``interval_s`` (half the watchdog timeout) when enabled."""

    def __init__(self, notifier: Notifier, interval_s: float | None) -> None:
        self.notifier = notifier
        self.interval_s = interval_s
        self._last: float | None = None
        self.pings = 0

    @classmethod
    def from_env(cls, notifier: Notifier, environ: Mapping[str, str] | None = None) -> Watchdog:
        env = os.environ if environ is None else environ
        usec, pid = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
        enabled = usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid()))
        return cls(notifier, int(usec) / 2e6 if enabled else None)

    def ping(self, now: float) -> bool:
        """Ping if half an interval passed since the last ping (``now``: monotonic seconds)."""
        if self.interval_s is None or not self.notifier.enabled:
            return False
        if self._last is not None and now - self._last < self.interval_s:
            return False
        self._last = now
        if self.notifier.send("WATCHDOG=1"):
            self.pings += 1
            return True
        return False
