"""The syslog sink against real receivers on loopback and unix sockets under tmp_path."""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from netwatch import __version__
from netwatch.config.schema import Config, SinkConfig
from netwatch.sinks import BUILTIN_SINKS, SinkError, build_sinks
from netwatch.sinks.base import Sink
from netwatch.sinks.syslog import PEN, SD_ID, SD_PARAMS, SyslogSink, header_field
from tests.sinks.conftest import make_alert

WAIT_S = 2.0
TS = "2026-01-01T00:00:00.000000Z"
HOSTILE_NAME = 'evil"] x="1"\n<13>1 - h a - - - injected\r\n\x00\\ \u2028Ünï ☃|=a'
HOSTILE_SUMMARY = "line1\nline2\r\n<14>1 - fake - - - - second\x00 tab\t é|x=y\\"


def _safe(text: str) -> str:
    """What the sink makes of control characters in SD values and MSG."""
    return re.sub("[\x00-\x1f\x7f-\x9f\u2028\u2029]", "\ufffd", text)


def _safe_cef(text: str) -> str:
    """What the sink makes of control characters in CEF extension values (CR/LF escaped)."""
    return re.sub("[\x00-\x09\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]", "\ufffd", text)


# ---------------------------------------------------------------- parsers (receiver side)

_HEADER_RE = re.compile(r"<(\d{1,3})>(\d) (\S+) (\S+) (\S+) (\S+) (\S+) ")


@dataclass
class Message:
    pri: int
    version: int
    ts: str
    host: str
    app: str
    procid: str
    msgid: str
    sd: list[tuple[str, dict[str, str]]] | None
    msg: str


def parse(raw: bytes) -> Message:
    """A strict RFC 5424 parser (one message; SD unescaped per RFC 5424 6.3.3)."""
    for bad in (b"\n", b"\r", b"\0"):
        assert bad not in raw
    text = raw.decode("utf-8")
    head = _HEADER_RE.match(text)
    assert head, text[:200]
    for field in head.groups()[2:]:
        assert all("!" <= c <= "~" for c in field), field
    rest = text[head.end() :]
    sd: list[tuple[str, dict[str, str]]] | None = None
    if rest.startswith("-"):
        rest = rest[1:]
    else:
        sd, rest = _parse_sd(rest)
    if rest:
        assert rest.startswith(" ")
        rest = rest[1:]
    pri, version, ts, host, app, procid, msgid = head.groups()
    return Message(int(pri), int(version), ts, host, app, procid, msgid, sd, rest)


def _parse_sd(text: str) -> tuple[list[tuple[str, dict[str, str]]], str]:
    elements: list[tuple[str, dict[str, str]]] = []
    i = 0
    while i < len(text) and text[i] == "[":
        end = i + 1
        while text[end] not in " ]":
            end += 1
        sd_id, params = text[i + 1 : end], {}
        i = end
        while text[i] == " ":
            eq = text.index("=", i)
            name = text[i + 1 : eq]
            assert re.fullmatch(r"[!-~]{1,32}", name) and not set(name) & set(' ]"'), name
            assert text[eq + 1] == '"'
            i, value = eq + 2, []
            while text[i] != '"':
                if text[i] == "\\" and text[i + 1] in '"\\]':
                    i += 1
                value.append(text[i])
                i += 1
            assert name not in params
            params[name] = "".join(value)
            i += 1
        assert text[i] == "]"
        i += 1
        elements.append((sd_id, params))
    return elements, text[i:]


def split_frames(buf: bytes) -> tuple[list[bytes], bytes]:
    """RFC 6587 octet-counted frames, and the incomplete rest."""
    frames = []
    while buf:
        m = re.match(rb"([1-9]\d*) ", buf)
        assert m, buf[:50]
        size = int(m.group(1))
        if len(buf) < m.end() + size:
            break
        frames.append(buf[m.end() : m.end() + size])
        buf = buf[m.end() + size :]
    return frames, buf


def _unescape_cef(tokens: str, specials: str) -> list[tuple[str, bool]]:
    out, i = [], 0
    while i < len(tokens):
        if tokens[i] == "\\" and i + 1 < len(tokens) and tokens[i + 1] in specials:
            c = tokens[i + 1]
            out.append(({"n": "\n", "r": "\r"}.get(c, c), True))
            i += 2
        else:
            out.append((tokens[i], False))
            i += 1
    return out


def parse_cef(line: str) -> tuple[list[str], dict[str, str]]:
    """CEF header fields and extension, unescaped."""
    chars = _unescape_cef(line, "\\|")
    fields: list[str] = []
    cur: list[str] = []
    i = 0
    while len(fields) < 7:
        c, escaped = chars[i]
        if c == "|" and not escaped:
            fields.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    # re-read the extension from the raw text, where only \\ = \n \r are escapes
    raw_ext = line[len("|".join(_escape_header(f) for f in fields)) + 1 :]
    ext_chars = _unescape_cef(raw_ext, "\\=nr")
    keys = [j for j, (c, escaped) in enumerate(ext_chars) if c == "=" and not escaped]
    ext: dict[str, str] = {}
    starts = []
    for eq in keys:
        k = eq
        while k > 0 and ext_chars[k - 1][0].isalnum() and not ext_chars[k - 1][1]:
            k -= 1
        assert k == 0 or ext_chars[k - 1] == (" ", False)
        starts.append((k, eq))
    for n, (k, eq) in enumerate(starts):
        stop = starts[n + 1][0] - 1 if n + 1 < len(starts) else len(ext_chars)
        key = "".join(c for c, _ in ext_chars[k:eq])
        assert key not in ext
        ext[key] = "".join(c for c, _ in ext_chars[eq + 1 : stop])
    return fields, ext


def _escape_header(field: str) -> str:
    return field.replace("\\", "\\\\").replace("|", "\\|")


# ---------------------------------------------------------------- receivers


class StreamServer:
    """A stream listener (TCP on 127.0.0.1 or unix) whose thread reads one connection at a
    time into ``data``; ``drop()`` closes the current connection, ``stop()`` everything."""

    def __init__(self, family: int, address: Any) -> None:
        self.listener = socket.socket(family, socket.SOCK_STREAM)
        if family == socket.AF_INET:
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(address)
        self.listener.listen()
        self.listener.settimeout(0.01)
        self.address = self.listener.getsockname()
        self.data = bytearray()
        self.accepted = 0
        self.closed_by_peer = 0
        self.cond = threading.Condition()
        self._stop = threading.Event()
        self._drop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            with self.cond:
                self.accepted += 1
            conn.settimeout(0.01)
            with conn:
                while not (self._stop.is_set() or self._drop.is_set()):
                    try:
                        chunk = conn.recv(65536)
                    except TimeoutError:
                        continue
                    with self.cond:
                        if not chunk:
                            self.closed_by_peer += 1
                            self.cond.notify_all()
                            break
                        self.data += chunk
                        self.cond.notify_all()
            with self.cond:
                self._drop.clear()
                self.cond.notify_all()

    def wait(self, predicate: Callable[[], bool]) -> None:
        with self.cond:
            assert self.cond.wait_for(predicate, WAIT_S)

    def frames(self, n: int) -> list[bytes]:
        self.wait(lambda: len(split_frames(bytes(self.data))[0]) >= n)
        with self.cond:
            frames, rest = split_frames(bytes(self.data))
        assert len(frames) == n and rest == b""
        return frames

    def drop(self) -> None:
        self._drop.set()
        self.wait(lambda: not self._drop.is_set())

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(WAIT_S)
        self.listener.close()


@pytest.fixture
def tcp_server() -> Iterator[StreamServer]:
    server = StreamServer(socket.AF_INET, ("127.0.0.1", 0))
    yield server
    server.stop()


@pytest.fixture
def udp_server() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(WAIT_S)
        yield sock


SinkFactory = Callable[..., SyslogSink]


@pytest.fixture
def make_sink() -> Iterator[SinkFactory]:
    """Builds a syslog sink from YAML the way the daemon does, and closes it afterwards."""
    sinks: list[Sink] = []

    def make(
        address: str, *, transport: str | None = None, fmt: str | None = None, **options: Any
    ) -> SyslogSink:
        entry = f"{{name: siem, type: syslog, address: '{address}'"
        entry += f", transport: {transport}" if transport else ""
        entry += f", format: {fmt}" if fmt else ""
        cfg = Config.from_yaml(f"sinks:\n  - {entry}}}\n")
        options.setdefault("hostname", "sensor-1")
        options.setdefault("timeout_s", 1.0)
        built = build_sinks(cfg.sinks, **options)
        sinks.extend(built)
        (sink,) = built
        assert isinstance(sink, SyslogSink)
        return sink

    yield make
    for sink in sinks:
        sink.close()


def _udp_addr(sock: socket.socket) -> str:
    host, port = sock.getsockname()
    return f"{host}:{port}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _full_record(**kw: Any) -> dict[str, Any]:
    alert = make_alert(
        device_mac="00:11:22:33:44:55",
        proto="tcp",
        peer_asn=37963,
        peer_org="Hangzhou Alibaba",
        service="tls",
        flow_uid="CfT1x23",
        community_id="1:LQU9qZlK+B5F3KDmev6m5PMibrg=",
        **kw,
    )
    return alert.record(3)


# ---------------------------------------------------------------- RFC 5424


def test_registered_and_built_from_config(make_sink: SinkFactory) -> None:
    assert Sink.registry["syslog"] is SyslogSink and SyslogSink in BUILTIN_SINKS
    sink = make_sink("127.0.0.1:514")
    assert (sink.transport, sink.cef, sink.timeout_s) == ("udp", False, 1.0)
    assert repr(sink) == "SyslogSink(name='siem')"


def test_rfc5424_message_over_udp(make_sink: SinkFactory, udp_server: socket.socket) -> None:
    sink = make_sink(_udp_addr(udp_server))
    record = _full_record()
    assert sink.send([record]).ok
    raw = udp_server.recv(65536)
    msg = parse(raw)
    assert msg.pri == 16 * 8 + 3  # local0.err for "high"
    assert (msg.version, msg.ts, msg.host, msg.app) == (1, TS, "sensor-1", "netwatch")
    assert (msg.procid, msg.msgid) == (str(os.getpid()), "cloud_registration")
    assert msg.sd == [
        (
            f"netwatch@{PEN}",
            {
                "rule": "cloud_registration",
                "severity": "high",
                "device": "lobby-1",
                "device_ip": "10.20.0.11",
                "peer_ip": "47.1.2.3",
                "peer_port": "443",
                "proto": "tcp",
                "peer_country": "CN",
                "peer_asn": "37963",
                "peer_name": "dev.hik-connect.com",
                "flow_uid": "CfT1x23",
                "community_id": "1:LQU9qZlK+B5F3KDmev6m5PMibrg=",
                "count": "3",
            },
        )
    ]
    assert raw.endswith(b"] \xef\xbb\xbf" + record["summary"].encode())
    assert msg.msg == "\ufeff" + record["summary"]


def test_null_values_are_left_out_of_the_sd(
    make_sink: SinkFactory, udp_server: socket.socket
) -> None:
    sink = make_sink(_udp_addr(udp_server))
    assert sink.send([make_alert(peer_ip=None, peer_port=None, peer_name=None).record()]).ok
    msg = parse(udp_server.recv(65536))
    assert msg.sd is not None
    assert list(msg.sd[0][1]) == [
        "rule",
        "severity",
        "device",
        "device_ip",
        "peer_country",
        "count",
    ]


@pytest.mark.parametrize(
    ("severity", "facility", "pri"),
    [
        ("critical", 16, 130),
        ("high", 16, 131),
        ("medium", 16, 132),
        ("low", 16, 133),
        ("info", 16, 134),
        ("critical", 4, 34),  # auth.crit
        ("info", 23, 190),  # local7.info
    ],
)
def test_pri_from_facility_and_severity(
    make_sink: SinkFactory, severity: str, facility: int, pri: int
) -> None:
    sink = make_sink("127.0.0.1:514", facility=facility)
    assert parse(sink.format(make_alert(severity=severity).record())).pri == pri


def test_sd_names_are_valid() -> None:
    for name in (SD_ID, *SD_PARAMS):
        assert re.fullmatch(r"[!-~]{1,32}", name) and not set(name) & set('= ]"')


def test_sd_escaping_round_trips(make_sink: SinkFactory) -> None:
    tricky = 'a"b\\c]d\\"e]]\\'
    raw = make_sink("127.0.0.1:514").format(make_alert(device=tricky).record())
    assert b'device="a\\"b\\\\c\\]d\\\\\\"e\\]\\]\\\\"' in raw
    msg = parse(raw)
    assert msg.sd is not None and msg.sd[0][1]["device"] == tricky


def test_header_fields_are_printable_ascii(make_sink: SinkFactory) -> None:
    assert header_field("a b\tc\nd\u00e9", 32) == "a-b-c-d-"
    assert header_field("", 32) == "-"
    assert header_field("x" * 40, 32) == "x" * 32
    sink = make_sink("127.0.0.1:514", hostname="sensor one\n.example")
    record = make_alert(rule="bad rule\n<1>1 x" + "y" * 40).record()
    record["ts"] = "yesterday at noon"
    msg = parse(sink.format(record))
    assert msg.host == "sensor-one-.example"
    assert msg.msgid == "bad-rule-<1>1-x" + "y" * 17
    assert msg.ts == "-"


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_hostile_values_cannot_inject(
    make_sink: SinkFactory,
    udp_server: socket.socket,
    tcp_server: StreamServer,
    transport: str,
) -> None:
    host, port = tcp_server.address
    addr = f"{host}:{port}" if transport == "tcp" else _udp_addr(udp_server)
    sink = make_sink(addr, transport=transport)
    hostile = make_alert(
        peer_name=HOSTILE_NAME, summary=HOSTILE_SUMMARY, device='cam "1"] \\', proto="t]c\np"
    ).record()
    plain = make_alert().record()
    assert sink.send([hostile, plain]).ok
    if transport == "tcp":
        raws = tcp_server.frames(2)
    else:
        raws = [udp_server.recv(65536), udp_server.recv(65536)]
    first, second = parse(raws[0]), parse(raws[1])
    assert first.sd is not None and len(first.sd) == 1
    params = first.sd[0][1]
    assert list(params) == [n for n in SD_PARAMS if hostile.get(n) is not None]
    assert params["peer_name"] == _safe(HOSTILE_NAME)
    assert params["device"] == 'cam "1"] \\'
    assert params["proto"] == "t]c\ufffdp"
    assert first.msg == "\ufeff" + _safe(HOSTILE_SUMMARY)
    assert second.msg == "\ufeff" + plain["summary"]


# ---------------------------------------------------------------- CEF


def test_cef_message(make_sink: SinkFactory, udp_server: socket.socket) -> None:
    sink = make_sink(_udp_addr(udp_server), fmt="cef")
    record = _full_record(
        rule="cloud_registration",
        summary="a|b\\c=d\ne\rf",
        peer_name="x.example key=1 \\",
    )
    assert sink.send([record]).ok
    raw = udp_server.recv(65536)
    msg = parse(raw)
    assert msg.sd is None and msg.pri == 131 and msg.msgid == "cloud_registration"
    assert b" - CEF:0|netwatch|netwatch|" + __version__.encode() + b"|cloud" in raw
    assert not msg.msg.startswith("\ufeff")
    assert msg.msg.startswith(
        f"CEF:0|netwatch|netwatch|{__version__}|cloud_registration|"
        "a\\|b\\\\c=d\ufffde\ufffdf|8|rt=1767225600000 "
    )
    assert "msg=a|b\\\\c\\=d\\ne\\rf" in msg.msg
    fields, ext = parse_cef(msg.msg)
    assert fields == [
        "CEF:0",
        "netwatch",
        "netwatch",
        __version__,
        "cloud_registration",
        "a|b\\c=d\ufffde\ufffdf",
        "8",
    ]
    assert ext == {
        "rt": "1767225600000",
        "src": "10.20.0.11",
        "shost": "lobby-1",
        "smac": "00:11:22:33:44:55",
        "dst": "47.1.2.3",
        "dpt": "443",
        "dhost": "x.example key=1 \\",
        "proto": "tcp",
        "app": "tls",
        "deviceDirection": "1",
        "cnt": "3",
        "cs1": "CfT1x23",
        "cs1Label": "flow_uid",
        "cs2": "1:LQU9qZlK+B5F3KDmev6m5PMibrg=",
        "cs2Label": "community_id",
        "cs3": "CN",
        "cs3Label": "peer_country",
        "cs4": "Hangzhou Alibaba",
        "cs4Label": "peer_org",
        "cn1": "37963",
        "cn1Label": "peer_asn",
        "msg": "a|b\\c=d\ne\rf",
    }


@pytest.mark.parametrize(
    ("severity", "cef"),
    [("critical", "10"), ("high", "8"), ("medium", "5"), ("low", "3"), ("info", "1")],
)
def test_cef_severity(make_sink: SinkFactory, severity: str, cef: str) -> None:
    sink = make_sink("127.0.0.1:514", fmt="cef")
    fields, _ = parse_cef(parse(sink.format(make_alert(severity=severity).record())).msg)
    assert fields[6] == cef


def test_cef_hostile_values(make_sink: SinkFactory, tcp_server: StreamServer) -> None:
    host, port = tcp_server.address
    sink = make_sink(f"{host}:{port}", transport="tcp", fmt="cef")
    hostile = make_alert(peer_name=HOSTILE_NAME, summary=HOSTILE_SUMMARY).record()
    assert sink.send([hostile, make_alert().record()]).ok
    first, second = (parse(f) for f in tcp_server.frames(2))
    fields, ext = parse_cef(first.msg)
    assert len(fields) == 7 and fields[5] == _safe(HOSTILE_SUMMARY)
    assert ext["dhost"] == _safe_cef(HOSTILE_NAME)
    assert ext["msg"] == _safe_cef(HOSTILE_SUMMARY)
    assert "x" not in ext and "injected" not in ext
    assert parse_cef(second.msg)[1]["msg"] == make_alert().summary


# ---------------------------------------------------------------- TCP


def test_tcp_octet_counting_batch(make_sink: SinkFactory, tcp_server: StreamServer) -> None:
    host, port = tcp_server.address
    sink = make_sink(f"{host}:{port}", transport="tcp")
    records = [make_alert(rule=f"rule_{i}", summary="é" * i).record() for i in range(3)]
    assert sink.send(records).ok
    frames = tcp_server.frames(3)
    with tcp_server.cond:
        data = bytes(tcp_server.data)
    assert data == b"".join(b"%d %s" % (len(f), f) for f in frames)
    assert [parse(f).msgid for f in frames] == ["rule_0", "rule_1", "rule_2"]
    assert [parse(f).msg for f in frames] == ["\ufeff" + "é" * i for i in range(3)]


def test_tcp_keeps_the_connection_and_reconnects(
    make_sink: SinkFactory, tcp_server: StreamServer
) -> None:
    host, port = tcp_server.address
    sink = make_sink(f"{host}:{port}", transport="tcp")
    rec = make_alert().record()
    assert sink.send([rec]).ok and sink.send([rec]).ok
    tcp_server.frames(2)
    assert tcp_server.accepted == 1
    tcp_server.drop()  # the receiver closes the connection but keeps listening
    assert sink.send([rec]).ok
    tcp_server.frames(3)  # not lost into the dead connection
    assert tcp_server.accepted == 2
    tcp_server.stop()
    down = sink.send([rec])
    assert not down.ok and not down.permanent
    assert "cannot send to tcp 127.0.0.1:" in down.error and "refused" in down.error
    restarted = StreamServer(socket.AF_INET, (host, port))
    try:
        assert sink.send([rec, rec]).ok
        assert len(restarted.frames(2)) == 2
    finally:
        restarted.stop()


def test_tcp_refused_is_a_retryable_failure(make_sink: SinkFactory) -> None:
    sink = make_sink(f"127.0.0.1:{_free_port()}", transport="tcp")
    result = sink.send([make_alert().record()])
    assert not result.ok and not result.permanent
    assert "Connection refused" in result.error


def test_close_closes_the_connection(make_sink: SinkFactory, tcp_server: StreamServer) -> None:
    host, port = tcp_server.address
    sink = make_sink(f"{host}:{port}", transport="tcp")
    assert sink.send([make_alert().record()]).ok
    tcp_server.frames(1)
    sink.close()
    tcp_server.wait(lambda: tcp_server.closed_by_peer == 1)
    sink.close()  # twice is fine


# ---------------------------------------------------------------- unix


def test_unix_datagram(make_sink: SinkFactory, tmp_path: Path) -> None:
    path = tmp_path / "log"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        server.settimeout(WAIT_S)
        sink = make_sink(str(path))
        assert sink.transport == "unix"
        assert sink.send([make_alert(rule="a").record(), make_alert(rule="b").record()]).ok
        assert [parse(server.recv(65536)).msgid for _ in range(2)] == ["a", "b"]


def test_unix_stream_fallback(make_sink: SinkFactory, tmp_path: Path) -> None:
    path = tmp_path / "log"
    server = StreamServer(socket.AF_UNIX, str(path))
    try:
        sink = make_sink(str(path))
        assert sink.send([make_alert(rule="a").record(), make_alert(rule="b").record()]).ok
        server.wait(lambda: server.data.count(b"\0") == 2)
        with server.cond:
            parts = bytes(server.data).split(b"\0")
        assert parts[2] == b"" and [parse(p).msgid for p in parts[:2]] == ["a", "b"]
        server.drop()
        assert sink.send([make_alert(rule="c").record()]).ok  # reconnects
        server.wait(lambda: server.data.count(b"\0") == 3)
    finally:
        server.stop()


def test_unix_without_receiver_fails(make_sink: SinkFactory, tmp_path: Path) -> None:
    missing = make_sink(str(tmp_path / "nope")).send([make_alert().record()])
    assert not missing.ok and not missing.permanent and "No such file" in missing.error
    dead = tmp_path / "dead"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(dead))  # closed below: the socket file stays, nobody listens
    refused = make_sink(str(dead)).send([make_alert().record()])
    assert not refused.ok and not refused.permanent and "refused" in refused.error


def test_unix_datagram_receiver_restart(make_sink: SinkFactory, tmp_path: Path) -> None:
    path = tmp_path / "log"
    sink = make_sink(str(path))
    for rule in ("a", "b"):  # a journald-style restart: the path is a new socket
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
            server.bind(str(path))
            server.settimeout(WAIT_S)
            assert sink.send([make_alert(rule=rule).record()]).ok
            assert parse(server.recv(65536)).msgid == rule
        path.unlink()


def test_send_timeout(make_sink: SinkFactory, tmp_path: Path) -> None:
    path = tmp_path / "log"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(path))
        server.listen()  # never accepts nor reads
        sink = make_sink(str(path), timeout_s=0.1)
        big = make_alert(summary="x" * 8000).record()
        result = sink.send([big] * 200)
    assert not result.ok and not result.permanent and "timed out" in result.error


# ---------------------------------------------------------------- size limits


def test_udp_truncation_keeps_one_valid_message(
    make_sink: SinkFactory, udp_server: socket.socket
) -> None:
    sink = make_sink(_udp_addr(udp_server))
    summary = "é" * 10_000
    assert sink.send([make_alert(summary=summary).record()]).ok
    raw = udp_server.recv(65536)
    assert 8190 <= len(raw) <= 8192
    msg = parse(raw)
    assert msg.sd is not None and msg.sd[0][1]["peer_name"] == "dev.hik-connect.com"
    assert msg.msg.startswith("\ufeffé") and summary.startswith(msg.msg[1:])
    udp_server.settimeout(0.05)
    with pytest.raises(TimeoutError):
        udp_server.recv(65536)  # nothing was split into a second datagram


def test_small_limit_drops_the_sd_and_cuts_cef_escapes(make_sink: SinkFactory) -> None:
    sink = make_sink("127.0.0.1:514", max_message=480)
    record = make_alert(peer_name="n" * 300, device="d" * 300, summary="s" * 600).record()
    raw = sink.format(record)
    assert len(raw) == 480
    msg = parse(raw)
    assert msg.sd is None and msg.msg.startswith("\ufeffsss")
    record = make_alert(summary="=" * 1000).record()  # the CEF name keeps 512 of them
    for limit in (1500, 1501):  # the cut falls after or inside an escape
        cef = make_sink("127.0.0.1:514", fmt="cef", max_message=limit)
        raw = cef.format(record)
        assert limit - 1 <= len(raw) <= limit and parse(raw).sd is None
        tail = raw.rsplit(b" msg=", 1)[1]
        assert tail == b"\\=" * (len(tail) // 2) and len(tail) > 100


# ---------------------------------------------------------------- construction


def test_bad_construction_fails(make_sink: SinkFactory) -> None:
    with pytest.raises(SinkError, match="address is required"):
        build_sinks([SinkConfig(name="s", type="syslog")])
    with pytest.raises(SinkError, match="facility 24"):
        make_sink("127.0.0.1:514", facility=24)
    with pytest.raises(SinkError, match="max_message"):
        make_sink("127.0.0.1:514", max_message=100)


def test_empty_batch_opens_nothing(make_sink: SinkFactory) -> None:
    sink = make_sink(f"127.0.0.1:{_free_port()}", transport="tcp")
    assert sink.send([]).ok


def test_odd_timestamps_never_raise(make_sink: SinkFactory) -> None:
    sink = make_sink("127.0.0.1:514", fmt="cef")
    for ts, want, rt in [
        (1_767_225_600.5, "2026-01-01T00:00:00.500000Z", "1767225600500"),
        ("2026-01-01T01:00:00+01:00", "2026-01-01T01:00:00+01:00", "1767225600000"),
        (float("nan"), "-", None),
        (True, "-", None),
        ("2026-01-01T00:00:00", "-", None),  # no offset
    ]:
        record = make_alert().record()
        record["ts"] = ts
        msg = parse(sink.format(record))
        assert msg.ts == want
        assert parse_cef(msg.msg)[1].get("rt") == rt


def test_tcp_attempt_has_one_total_deadline(make_sink: SinkFactory) -> None:
    """A receiver that reads one byte at a time: the attempt, including its retry on a fresh
    connection, ends within ``timeout_s`` (it took twice that before)."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.05)
    stop = threading.Event()

    def trickle_reader(conn: socket.socket) -> None:
        with conn:
            while not stop.wait(0.2):
                try:
                    conn.recv(1)
                except OSError:
                    return

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            threading.Thread(target=trickle_reader, args=(conn,), daemon=True).start()

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        host, port = server.getsockname()
        sink = make_sink(f"{host}:{port}", transport="tcp", timeout_s=1.0)
        assert sink.send([make_alert().record()]).ok  # a kept connection
        big = [make_alert(summary="x" * 6000).record() for _ in range(1500)]
        started = time.monotonic()
        result = sink.send(big)
        took = time.monotonic() - started
        assert not result.ok and "timed out" in result.error
        assert took < 1.5, f"the attempt took {took:.2f} s"
    finally:
        stop.set()
        acceptor.join()
        server.close()
