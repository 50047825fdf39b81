"""Hostile receivers on 127.0.0.1 for deadline tests: an HTTP server that trickles its 200
reply one byte at a time, and one that holds each request until told to answer."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

REPLY = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


@dataclass
class Trickler:
    """Accepts connections, reads the request, then sends ``REPLY`` one byte per
    ``every_s``; counts the connections it took."""

    every_s: float
    url: str = ""
    connections: int = 0
    stop: threading.Event = field(default_factory=threading.Event)


def _trickle(conn: socket.socket, peer: Trickler) -> None:
    with conn:
        conn.settimeout(5.0)
        with contextlib.suppress(OSError):
            conn.recv(65536)
            for byte in REPLY:
                if peer.stop.wait(peer.every_s):
                    return
                conn.sendall(bytes([byte]))


@contextlib.contextmanager
def trickler(every_s: float = 5.0) -> Iterator[Trickler]:
    """A server whose reply takes ``len(REPLY) * every_s`` seconds."""
    peer = Trickler(every_s)
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.05)
    peer.url = f"http://127.0.0.1:{server.getsockname()[1]}"

    def serve() -> None:
        while not peer.stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            peer.connections += 1
            threading.Thread(target=_trickle, args=(conn, peer), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield peer
    finally:
        peer.stop.set()
        thread.join()
        server.close()


def wait_for(predicate: Callable[[], object], timeout: float = 5.0, step: float = 0.01) -> bool:
    """Poll ``predicate()`` until true or ``timeout`` seconds passed."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())
