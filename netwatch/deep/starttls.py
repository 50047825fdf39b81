"""Protocols that switch to TLS in-band, and Zeek's service names for the plaintext part.

:class:`StarttlsParser` follows the plaintext start of FTP, SMTP, POP3, IMAP, IRC, MySQL and
PostgreSQL connections (claimed by their ports, SMTP and FTP also by the server's ``220``
greeting elsewhere, PostgreSQL by its SSLRequest) until both sides agree to switch (FTP
``AUTH TLS``/234, SMTP and IRC ``STARTTLS``/220 or 670, POP3 ``STLS``/+OK, IMAP
``STARTTLS``/OK, PostgreSQL's SSLRequest answered ``S``, MySQL's SSLRequest packet); it then
hands the flow to the TLS parser, so the client's ClientHello adds ``ssl`` (and SNI) as Zeek's
SSL analyzer, attached by the protocol's analyzer at that point, does.

Service names, as Zeek's analyzers confirm them (read from Zeek's FTP and SMTP analyzers
and DPD signatures): ``ftp`` on the first client command (a word of 3 or more printable
characters) on ports 21/2811, withdrawn when a server reply line is malformed; ``smtp`` on
the first SMTP command on ports 25/587, elsewhere once the server greeted with 220 and the
client said EHLO/HELO, withdrawn when a server reply code is out of 100-599; ``imap`` on a
tagged client command after the server's ``* OK`` greeting. POP3, IRC, MySQL and PostgreSQL
are not named (Zeek has analyzers for them; a camera site does not need them): only their
``ssl`` is. FTP data channels announced by ``PORT``/``EPRT`` commands and 227/229 replies are
announced to the inspector, whose next connection to that address and port gets
``ftp-data``.

Bounded work: each payload's first line only (``MAX_LINE``); the inspector's payload budget,
except that an FTP control connection (small and the only way to see its data channels)
stays under inspection for ``MAX_FTP_PAYLOADS`` payloads. Per-flow state in ``flow.app``
under ``_starttls``. Reads no configuration; never raises on hostile bytes.
Known limits: with several capture workers a data channel that hashes to another worker than
its control connection is not named ``ftp-data``; a line split over two segments is read from
the first only (a segment that continues a line is skipped); the FTP data channel must carry
payload to be seen (an empty listing is not marked).
"""

from __future__ import annotations

import _socket as socket  # no socket.py (enums, selectors) at start
import base64
import binascii
import enum
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from netwatch.deep.base import OWNER, Context, DeepParser, Verdict, drop_service, service
from netwatch.deep.tls import TlsParser, looks_like_tls
from netwatch.lazyre import lazy

if TYPE_CHECKING:
    from netwatch.flow.table import Flow

MAX_LINE: Final = 512
MAX_FTP_PAYLOADS: Final = 256
STATE: Final = "_starttls"


class Proto(enum.Enum):
    """The plaintext protocol a flow speaks (the value is Zeek's analyzer name)."""

    FTP = "ftp"
    SMTP = "smtp"
    POP3 = "pop3"
    IMAP = "imap"
    IRC = "irc"
    MYSQL = "mysql"
    POSTGRES = "postgresql"


#: Zeek's analyzer ports (each protocol's ``main.zeek``).
PORTS: Final[dict[int, Proto]] = {
    21: Proto.FTP,
    2811: Proto.FTP,
    25: Proto.SMTP,
    587: Proto.SMTP,
    110: Proto.POP3,
    143: Proto.IMAP,
    **{port: Proto.IRC for port in (6666, 6667, 6668, 6669)},
    3306: Proto.MYSQL,
    5432: Proto.POSTGRES,
}
SMTP_COMMANDS: Final = frozenset(
    {
        "HELO", "EHLO", "MAIL", "RCPT", "DATA", "BDAT", "RSET", "VRFY", "EXPN", "HELP",
        "NOOP", "QUIT", "AUTH", "STARTTLS", "TURN", "ETRN", "SEND", "SOML", "SAML",
    }
)  # fmt: skip
#: PostgreSQL's SSLRequest: length 8 and the request code 80877103.
PG_SSL_REQUEST: Final = b"\x00\x00\x00\x08\x04\xd2\x16\x2f"
_MYSQL_CLIENT_SSL: Final = 0x0800
_MYSQL_SSL_REQUEST_LEN: Final = 32
_TLS = TlsParser()


_pasv = lazy(r"(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3})", re.ASCII)


_epsv = lazy(r"\(([!-~])\1\1(\d{1,5})\1\)", re.ASCII)


_eprt = lazy(r"^([!-~])([12])\1([0-9A-Fa-f:.]+)\1(\d{1,5})\1", re.ASCII)


_SERVER_GREETING = (b"220 ", b"220-")


_code = lazy(r"[0-9]{3}")


@dataclass(slots=True)
class LineState:
    """What the plaintext exchange showed so far."""

    proto: Proto | None  # None: greeted with 220 on another port, the client tells which
    greeted: bool = False  # the server's greeting (220 / * OK) was seen
    replied: bool = False  # the server's first reply was judged
    upgrade: bool = False  # the client asked to switch to TLS
    pending: str = ""  # the code of an FTP multi-line reply still going on
    violated: bool = False  # the server broke the protocol: no confirmation any more
    gssapi: bool = False  # FTP AUTH GSSAPI: ADAT commands carry a TLS handshake (GridFTP)
    open_line: list[bool] = field(default_factory=lambda: [False, False])  # by is_orig
    payloads: int = 0


def first_line(buf: bytes) -> str:
    """The first line of ``buf`` (at most ``MAX_LINE`` bytes), without its line end."""
    end = buf.find(b"\n", 0, MAX_LINE)
    return buf[: MAX_LINE if end < 0 else end].decode("latin-1").rstrip("\r")


def is_ftp_command(word: str) -> bool:
    """Zeek's test: 3 or more printable characters, no space."""
    return len(word) >= 3 and word.isascii() and word.isprintable()


def ftp_data_channel(line: str, is_orig: bool, server: bytes) -> tuple[bytes, int] | None:
    """The (address, port) a PORT/EPRT command or a 227/229 reply announces, or None."""
    word, _, rest = line.strip().partition(" ")
    word = word.upper()
    if (is_orig and word == "PORT") or (not is_orig and word == "227"):
        match = _pasv().search(rest)
        if match is None:
            return None
        parts = [int(part) for part in match.groups()]
        if max(parts) > 255:
            return None
        return bytes(parts[:4]), parts[4] * 256 + parts[5]
    if not is_orig and word == "229":
        match = _epsv().search(rest)
        port = int(match.group(2)) if match else 0
        return (server, port) if 0 < port < 65536 else None
    if is_orig and word == "EPRT":
        match = _eprt().match(rest.strip())
        if match is None or not 0 < int(match.group(4)) < 65536:
            return None
        family = socket.AF_INET if match.group(2) == "1" else socket.AF_INET6
        try:
            address = socket.inet_pton(family, match.group(3))
        except OSError:
            return None
        return address, int(match.group(4))
    return None


class StarttlsParser(DeepParser):
    """FTP, SMTP, POP3, IMAP, IRC, MySQL and PostgreSQL up to their switch to TLS."""

    rank = 40
    tcp_ports = frozenset(PORTS)
    server_magic = _SERVER_GREETING
    client_magic = (PG_SSL_REQUEST,)

    def tcp(self, ctx: Context, flow: Flow, is_orig: bool, buf: bytes, ts: float) -> Verdict:
        state = flow.app.get(STATE) if flow.app is not None else None
        if state is None:
            if flow.resp_p not in PORTS and flow.orig_p in PORTS:
                return Verdict.PASS  # Zeek attaches by the responder's port only
            if is_orig and looks_like_tls(buf):
                return Verdict.PASS  # implicit TLS on the port (SMTP submission over TLS)
            state = LineState(PORTS.get(flow.resp_p))
            if state.proto is None and is_orig and buf.startswith(PG_SSL_REQUEST):
                state.proto = Proto.POSTGRES
            flow.app_set(STATE, state)
        state.payloads += 1
        if state.proto in (Proto.MYSQL, Proto.POSTGRES):
            return self._database(flow, state, is_orig, buf)
        line = first_line(buf)
        continued = state.open_line[is_orig]  # the segment goes on with the previous line
        state.open_line[is_orig] = not buf.endswith(b"\n")
        if continued:
            pass
        elif is_orig:
            self._client(ctx, flow, state, line)
        else:
            self._server(ctx, flow, state, line, buf)
        return self._next(flow, state)

    @staticmethod
    def _next(flow: Flow, state: LineState) -> Verdict:
        if flow.app is not None and flow.app.get(OWNER) is _TLS:
            return Verdict.MORE  # the ClientHello comes next
        if state.proto is Proto.FTP and state.payloads < MAX_FTP_PAYLOADS:
            # the control connection announces its data channels all along
            flow.deep_o = max(flow.deep_o, 1)
            flow.deep_r = max(flow.deep_r, 1)
        return Verdict.MORE

    @staticmethod
    def _client(ctx: Context, flow: Flow, state: LineState, line: str) -> None:
        words = line.split()
        if not words:
            return
        word = words[0].upper()
        if state.proto is None and state.greeted and word in ("EHLO", "HELO"):
            state.proto = Proto.SMTP  # Zeek's SMTP DPD: a 220 greeting and EHLO/HELO
        elif state.proto is None and state.greeted and word == "USER":
            state.proto = Proto.FTP  # Zeek's FTP DPD: USER after a 220 greeting
        proto = state.proto
        if proto is Proto.FTP:
            if is_ftp_command(words[0]) and not state.violated:
                service(flow, "ftp")
            mechanism = words[1].upper() if word == "AUTH" and len(words) > 1 else ""
            state.upgrade = mechanism in ("TLS", "SSL")
            if mechanism:
                state.gssapi = mechanism == "GSSAPI"
            elif word == "ADAT" and state.gssapi and len(words) > 1:
                _adat(ctx, flow, words[1])
            channel = ftp_data_channel(line, True, flow.resp_h)
            if channel is not None:
                ctx.expect(channel[0], channel[1], "ftp-data")
        elif proto is Proto.SMTP:
            if word in SMTP_COMMANDS and not state.violated:
                service(flow, "smtp")
            state.upgrade = word == "STARTTLS"
        elif proto is Proto.IMAP:
            if len(words) > 1 and state.greeted:
                service(flow, "imap")
            state.upgrade = len(words) > 1 and words[1].upper() == "STARTTLS"
        elif proto is Proto.POP3:
            state.upgrade = word == "STLS"
        elif proto is Proto.IRC:
            state.upgrade = word == "STARTTLS"

    @staticmethod
    def _server(ctx: Context, flow: Flow, state: LineState, line: str, buf: bytes) -> None:
        proto = state.proto
        first = not state.replied
        state.replied = True
        if first:
            state.greeted = buf.startswith(_SERVER_GREETING) or (
                proto is Proto.IMAP and line.startswith("* OK")
            )
        code = line[:3]
        if proto is Proto.FTP:
            if not _ftp_reply_ok(state, line):
                state.violated = True  # Zeek: a malformed reply line is a violation
                drop_service(flow, "ftp")
            channel = ftp_data_channel(line, False, flow.resp_h)
            if channel is not None:
                ctx.expect(channel[0], channel[1], "ftp-data")
            agreed = code == "234"
        elif proto is Proto.SMTP:
            if not (_code().fullmatch(code) and 100 <= int(code) <= 599):
                state.violated = True  # Zeek: a reply code out of range is a violation
                drop_service(flow, "smtp")
            agreed = code == "220"
        elif proto is Proto.IMAP:
            words = line.split()
            agreed = len(words) > 1 and words[1].upper() == "OK"
        elif proto is Proto.POP3:
            agreed = line.startswith("+OK")
        elif proto is Proto.IRC:
            agreed = " 670 " in line
        else:
            agreed = False
        if agreed and state.upgrade:
            _hand_to_tls(flow)

    @staticmethod
    def _database(flow: Flow, state: LineState, is_orig: bool, buf: bytes) -> Verdict:
        if state.proto is Proto.POSTGRES:
            if is_orig:
                state.upgrade = buf.startswith(PG_SSL_REQUEST)
            elif state.upgrade and buf[:1] == b"S":
                _hand_to_tls(flow)
                return Verdict.MORE
        elif is_orig and _mysql_ssl_request(buf):
            _hand_to_tls(flow)
            return Verdict.MORE
        return Verdict.MORE if state.payloads < 4 else Verdict.DONE


def _ftp_reply_ok(state: LineState, line: str) -> bool:
    """Zeek's FTP reply check on a segment's first line: a new reply starts with a code of
    100 or more followed by a space, a dash (more lines follow) or nothing."""
    code = line[:3]
    if state.pending:
        if code == state.pending and line[3:4] == " ":
            state.pending = ""
        return True
    if not (_code().fullmatch(code) and int(code) >= 100):
        return False
    if line[3:4] == "-":
        state.pending = code
        return True
    return line[3:4] in ("", " ")


def _adat(ctx: Context, flow: Flow, token: str) -> None:
    """An FTP ``ADAT`` token after ``AUTH GSSAPI``: GSI sends a TLS handshake base64-encoded
    in it (Zeek's FTP analyzer hands it to its SSL analyzer)."""
    try:
        record = base64.b64decode(token[: 4 * MAX_LINE], validate=True)
    except (binascii.Error, ValueError):
        return
    if record.startswith(b"\x16\x03"):
        _TLS.tcp(ctx, flow, True, record, 0.0)


def _mysql_ssl_request(buf: bytes) -> bool:
    """A MySQL SSLRequest packet: 32-byte payload, sequence 1, CLIENT_SSL in its flags."""
    if len(buf) < 4 + _MYSQL_SSL_REQUEST_LEN:
        return False
    length = int.from_bytes(buf[:3], "little")
    flags = int.from_bytes(buf[4:6], "little")
    return length == _MYSQL_SSL_REQUEST_LEN and buf[3] == 1 and bool(flags & _MYSQL_CLIENT_SSL)


def _hand_to_tls(flow: Flow) -> None:
    """The switch is agreed: the TLS parser reads what follows (the client's ClientHello)."""
    if flow.app is None:
        flow.app = {}
    flow.app[OWNER] = _TLS
    flow.deep_o = max(flow.deep_o, 1)
    flow.deep_r = max(flow.deep_r, 1)
