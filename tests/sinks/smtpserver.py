"""A small SMTP server on 127.0.0.1 for the e-mail sink's tests (not the deprecated stdlib
``smtpd``): EHLO/HELO, STARTTLS, AUTH PLAIN, MAIL, RCPT, DATA, RSET, NOOP, QUIT.

It records every message it accepts (envelope, data, whether it came over TLS and who had
logged in), can require TLS and AUTH, refuse recipients with a given code, speak TLS from
the first byte (implicit TLS), or send its greeting one byte at a time (deadline tests).
"""

from __future__ import annotations

import base64
import contextlib
import email
import email.policy
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, BinaryIO

GREETING = b"220 smtp.test ESMTP netwatch-test\r\n"


@dataclass
class Mail:
    """One accepted message."""

    mail_from: str
    rcpt_to: list[str]
    data: bytes
    tls: bool
    user: str | None

    def parsed(self) -> EmailMessage:
        msg = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        return msg


@dataclass
class SmtpServer:
    """What the server does and what it saw; ``port`` once serving."""

    tls: ssl.SSLContext | None = None  # STARTTLS offered with it (or implicit, see below)
    implicit: bool = False
    users: dict[str, str] = field(default_factory=dict)  # AUTH PLAIN offered when set
    require_auth: bool = False
    rcpt_code: int = 250
    trickle_s: float = 0.0  # seconds between the greeting's bytes
    port: int = 0
    mails: list[Mail] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)


class _Session:
    def __init__(self, server: SmtpServer, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        self.tls = False
        self.user: str | None = None
        self.rfile: BinaryIO = sock.makefile("rb")
        self.mail_from: str | None = None
        self.rcpt: list[str] = []

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\r\n")

    def readline(self) -> bytes:
        return self.rfile.readline(65536)

    def start_tls(self) -> None:
        assert self.server.tls is not None
        self.rfile.close()
        self.sock = self.server.tls.wrap_socket(self.sock, server_side=True)
        self.rfile = self.sock.makefile("rb")
        self.tls = True
        self.user, self.mail_from, self.rcpt = None, None, []

    def greet(self) -> bool:
        if self.server.trickle_s <= 0:
            self.sock.sendall(GREETING)
            return True
        for byte in GREETING:
            if self.server.stop.wait(self.server.trickle_s):
                return False
            self.sock.sendall(bytes([byte]))
        return True

    def ehlo(self) -> None:
        lines = ["smtp.test"]
        if self.server.tls is not None and not self.tls:
            lines.append("STARTTLS")
        if self.server.users:
            lines.append("AUTH PLAIN")
        lines.append("HELP")
        for i, text in enumerate(lines):
            self.send(f"250{'-' if i < len(lines) - 1 else ' '}{text}")

    def auth(self, args: str) -> None:
        parts = args.split()
        if not parts or parts[0].upper() != "PLAIN" or not self.server.users:
            self.send("504 5.5.4 unrecognised authentication type")
            return
        if len(parts) > 1:
            blob = parts[1]
        else:
            self.send("334 ")
            blob = self.readline().decode().strip()
        try:
            _, user, password = base64.b64decode(blob).decode().split("\0")
        except ValueError:
            self.send("501 5.5.2 cannot decode")
            return
        if self.server.users.get(user) == password:
            self.user = user
            self.send("235 2.7.0 authentication successful")
        else:
            self.send("535 5.7.8 authentication credentials invalid")

    def data(self) -> None:
        if self.mail_from is None or not self.rcpt:
            self.send("503 5.5.1 need MAIL and RCPT first")
            return
        self.send("354 end with <CRLF>.<CRLF>")
        lines: list[bytes] = []
        while True:
            line = self.readline()
            if not line or line == b".\r\n":
                break
            lines.append(line[1:] if line.startswith(b"..") else line)
        mail = Mail(self.mail_from, self.rcpt, b"".join(lines), self.tls, self.user)
        with self.server.lock:
            self.server.mails.append(mail)
        self.mail_from, self.rcpt = None, []
        self.send("250 2.0.0 queued")

    def run(self) -> None:
        if self.server.implicit:
            self.start_tls()
        if not self.greet():
            return
        while True:
            raw = self.readline()
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            verb, _, args = line.partition(" ")
            verb = verb.upper()
            with self.server.lock:
                self.server.commands.append(verb)
            if not self.command(verb, args):
                return

    def command(self, verb: str, args: str) -> bool:
        """Answer one command; False: the session ends."""
        if verb == "EHLO":
            self.ehlo()
        elif verb == "HELO":
            self.send("250 smtp.test")
        elif verb == "STARTTLS" and self.server.tls is not None and not self.tls:
            self.send("220 2.0.0 ready to start TLS")
            self.start_tls()
        elif verb == "AUTH":
            self.auth(args)
        elif verb == "MAIL":
            if self.server.require_auth and self.user is None:
                self.send("530 5.7.0 authentication required")
            else:
                self.mail_from = args.partition(":")[2].strip().strip("<>")
                self.send("250 2.1.0 ok")
        elif verb == "RCPT":
            code = self.server.rcpt_code
            if code == 250:
                self.rcpt.append(args.partition(":")[2].strip().strip("<>"))
            self.send(f"{code} {'2.1.5 ok' if code == 250 else 'recipient refused'}")
        elif verb == "DATA":
            self.data()
        elif verb in ("RSET", "NOOP"):
            self.mail_from, self.rcpt = (
                (None, []) if verb == "RSET" else (self.mail_from, self.rcpt)
            )
            self.send("250 2.0.0 ok")
        elif verb == "QUIT":
            self.send("221 2.0.0 bye")
            return False
        else:
            self.send("502 5.5.2 command not recognised")
        return True


class _Handler(socketserver.BaseRequestHandler):
    server: Any

    def handle(self) -> None:
        self.request.settimeout(10.0)
        session = _Session(self.server.smtp, self.request)
        try:
            with contextlib.suppress(OSError, ssl.SSLError):
                session.run()
        finally:
            session.rfile.close()
            session.sock.close()


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@contextlib.contextmanager
def serve(**options: Any) -> Iterator[SmtpServer]:
    """Run an :class:`SmtpServer` (``options`` are its fields) on a loopback port."""
    smtp = SmtpServer(**options)
    server = _TCPServer(("127.0.0.1", 0), _Handler)
    server.smtp = smtp  # type: ignore[attr-defined]
    smtp.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield smtp
    finally:
        smtp.stop.set()
        server.shutdown()
        server.server_close()
        thread.join()


def wait_for_mails(smtp: SmtpServer, count: int, timeout: float = 5.0) -> list[Mail]:
    """The server's mails once there are ``count`` of them (or what it has at ``timeout``)."""
    deadline = time.monotonic() + timeout
    while len(smtp.mails) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return list(smtp.mails)
