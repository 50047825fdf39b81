"""A recording HTTP server on 127.0.0.1 for sink tests: scripted answers, recorded requests;
HTTPS with a given server TLS context."""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Stub:
    """Answers from ``script`` (status, headers) in order, then ``default``."""

    url: str = ""
    default: int = 200
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self) -> tuple[int, dict[str, str]]:
        with self.lock:
            return self.script.pop(0) if self.script else (self.default, {})


def _handler(stub: Stub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with stub.lock:
                stub.requests.append(Request(self.path, dict(self.headers.items()), body))
            status, headers = stub.answer()
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def serve(default: int = 200, tls: ssl.SSLContext | None = None) -> Iterator[Stub]:
    """Run a stub server on an ephemeral loopback port for the duration of the block (over
    TLS with ``tls``: a failed handshake drops the connection, no request is recorded)."""
    stub = Stub(default=default)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(stub))
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    scheme = "https" if tls is not None else "http"
    stub.url = f"{scheme}://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
