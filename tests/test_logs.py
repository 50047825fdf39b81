"""netwatch.logs: exact JSON and logfmt lines, injection safety, levels, reconfiguration."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from netwatch.alerts.model import Alert, Severity
from netwatch.config.schema import LoggingConfig
from netwatch.logs import (
    JsonFormatter,
    LogfmtFormatter,
    alert_fields,
    configure_logging,
    logfmt_key,
    rfc3339_ms,
)

T0 = 1768467600.25  # 2026-01-15T09:00:00.250Z
TS = "2026-01-15T09:00:00.250Z"

# Values a hostile packet can put in a DNS name, SNI or Host header.
NASTY = [
    "evil.example\nts=2026-01-01T00:00:00.000Z level=error msg=forged",
    "\r\nlevel=critical",
    "\x1b[31mred\x1b[0m",
    "nul\x00byte",
    'say "hi" to=them',
    "a=b",
    "back\\slash\\",
    "\\n is not a newline",
    "tab\there",
    "ünïcödé 日本語 🎥",
    "\u2028line\u2029separators",
    "\u202eevil bidi override",
    "\x85nel \x7fdel \x9bcsi",
    "\udcff lone surrogate",
    "",
    " ",
    "=",
    '"',
    "null",
    "plain-value_1.2",
]


def record(
    msg: str = "hello",
    *args: object,
    level: int = logging.INFO,
    name: str = "netwatch.test",
    fields: Any = None,
    exc_info: Any = None,
) -> logging.LogRecord:
    rec = logging.LogRecord(name, level, __file__, 1, msg, args, exc_info)
    rec.created = T0
    if fields is not None:
        rec.fields = fields
    return rec


_UNESCAPE = {'"': '"', "\\": "\\", "n": "\n", "r": "\r", "t": "\t"}
_HEX_LEN = {"x": 2, "u": 4, "U": 8}


def parse_logfmt(line: str) -> list[tuple[str, str]]:
    """A strict logfmt tokenizer: ``key=value`` pairs separated by one space.

    Values are bare (no space, quote, ``=`` or backslash) or double-quoted with the escapes
    netwatch writes. Anything else fails the test.
    """
    pairs: list[tuple[str, str]] = []
    i, n = 0, len(line)
    while i < n:
        eq = line.index("=", i)
        key = line[i:eq]
        assert key, f"empty key at {i} in {line!r}"
        assert all((c.isalnum() and c.isascii()) or c in "_.-" for c in key), key
        i = eq + 1
        if i < n and line[i] == '"':
            i += 1
            out: list[str] = []
            while line[i] != '"':
                ch = line[i]
                if ch == "\\":
                    esc = line[i + 1]
                    if esc in _UNESCAPE:
                        out.append(_UNESCAPE[esc])
                        i += 2
                    else:
                        width = _HEX_LEN[esc]
                        out.append(chr(int(line[i + 2 : i + 2 + width], 16)))
                        i += 2 + width
                else:
                    assert ch == " " or ch.isprintable(), f"raw {ch!r} inside quotes"
                    out.append(ch)
                    i += 1
            value = "".join(out)
            i += 1
        else:
            end = line.find(" ", i)
            end = n if end < 0 else end
            value = line[i:end]
            assert value, f"bare empty value for {key!r}"
            assert not any(c in ' "=\\' or not c.isprintable() for c in value), value
            i = end
        pairs.append((key, value))
        if i < n:
            assert line[i] == " ", f"expected one space at {i} in {line!r}"
            i += 1
            assert i < n, "trailing space"
    return pairs


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    """The root logger, with its handlers and level restored after the test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield root
    for h in root.handlers[:]:
        if h not in handlers:
            root.removeHandler(h)
            h.close()
    for h in handlers:
        if h not in root.handlers:
            root.addHandler(h)
    root.setLevel(level)


def test_timestamp_is_rfc3339_utc_with_milliseconds() -> None:
    assert rfc3339_ms(T0) == TS
    assert rfc3339_ms(1768467600.123) == "2026-01-15T09:00:00.123Z"  # not .122 (float)
    assert rfc3339_ms(1768467600.9996) == "2026-01-15T09:00:01.000Z"
    assert rfc3339_ms(0.0) == "1970-01-01T00:00:00.000Z"


def test_logfmt_exact_line() -> None:
    rec = record(
        "alert %s on %d",
        "cloud_registration",
        3,
        level=logging.WARNING,
        fields={
            "device": "lobby-cam",
            "peer_port": 443,
            "ratio": 0.5,
            "ok": True,
            "gone": None,
            "tags": ["a", 1],
            "evidence": {"sni": "x y"},
        },
    )
    assert LogfmtFormatter().format(rec) == (
        f'ts={TS} level=warning logger=netwatch.test msg="alert cloud_registration on 3" '
        "device=lobby-cam peer_port=443 ratio=0.5 ok=true gone=null "
        'tags="[\\"a\\",1]" evidence="{\\"sni\\":\\"x y\\"}"'
    )


def test_json_exact_line() -> None:
    rec = record(
        "alert %s",
        "cloud_registration",
        level=logging.ERROR,
        fields={"device": "lobby-cam", "peer_port": 443, "gone": None, "tags": ["a", 1]},
    )
    assert JsonFormatter().format(rec) == (
        f'{{"ts":"{TS}","level":"error","logger":"netwatch.test",'
        '"msg":"alert cloud_registration","device":"lobby-cam","peer_port":443,'
        '"gone":null,"tags":["a",1]}'
    )


def test_levels_are_lowercase() -> None:
    for level, name in [
        (logging.DEBUG, "debug"),
        (logging.INFO, "info"),
        (logging.WARNING, "warning"),
        (logging.ERROR, "error"),
        (logging.CRITICAL, "critical"),
    ]:
        assert json.loads(JsonFormatter().format(record(level=level)))["level"] == name
        assert f" level={name} " in LogfmtFormatter().format(record(level=level))


@pytest.mark.parametrize("value", NASTY)
def test_logfmt_nasty_values_round_trip_on_one_line(value: str) -> None:
    line = LogfmtFormatter().format(
        record("%s", value, name=f"netwatch.{value}", fields={"host": value, "n": 1})
    )
    assert "\n" not in line
    assert "\r" not in line
    assert all(c == " " or c.isprintable() for c in line), repr(line)
    line.encode("utf-8")  # no lone surrogates reach the stream
    pairs = parse_logfmt(line)
    assert [k for k, _ in pairs] == ["ts", "level", "logger", "msg", "host", "n"]
    assert dict(pairs) == {
        "ts": TS,
        "level": "info",
        "logger": f"netwatch.{value}",
        "msg": value,
        "host": value,
        "n": "1",
    }


@pytest.mark.parametrize("value", NASTY)
def test_json_nasty_values_round_trip_on_one_ascii_line(value: str) -> None:
    fields = {"host": value, "nested": {value: [value]}}
    line = JsonFormatter().format(record("%s", value, name=value, fields=fields))
    assert line.isascii()
    assert all(" " <= c <= "~" for c in line), repr(line)
    parsed = json.loads(line)
    assert parsed == {
        "ts": TS,
        "level": "info",
        "logger": value,
        "msg": value,
        "host": value,
        "nested": {value: [value]},
    }


def test_logfmt_quoting_and_escapes_exact() -> None:
    fields = {
        "a": "new\nline",
        "b": "\x1b[31m",
        "c": "nul\x00",
        "d": 'q"=\\',
        "e": "",
        "f": "\u2028\U000e0001",
        "g": "é",
        "h": "tab\tcr\r",
    }
    line = LogfmtFormatter().format(record("m", fields=fields))
    assert line == (
        f"ts={TS} level=info logger=netwatch.test msg=m "
        'a="new\\nline" b="\\x1b[31m" c="nul\\x00" d="q\\"=\\\\" e="" '
        'f="\\u2028\\U000e0001" g=é h="tab\\tcr\\r"'
    )


def test_logfmt_keys_are_sanitised_and_never_collide() -> None:
    rec = record(
        "m",
        fields={"bad key=\n\x1b": 1, "bad_key___": 2, "msg": "x", "level": "y", "": 3, "é.k-1": 4},
    )
    pairs = parse_logfmt(LogfmtFormatter().format(rec))
    assert pairs[4:] == [
        ("bad_key___", "1"),
        ("_bad_key___", "2"),
        ("_msg", "x"),
        ("_level", "y"),
        ("_", "3"),
        ("_.k-1", "4"),
    ]
    assert logfmt_key("ok.key_1-2") == "ok.key_1-2"


def test_json_reserved_keys_are_prefixed_not_overwritten() -> None:
    parsed = json.loads(JsonFormatter().format(record("real", fields={"msg": "fake"})))
    assert parsed["msg"] == "real"
    assert parsed["_msg"] == "fake"


def test_non_finite_floats_and_odd_values() -> None:
    fields = {"nan": float("nan"), "inf": float("-inf"), "obj": object.__name__, "t": (1, 2)}
    parsed = json.loads(JsonFormatter().format(record(fields=fields)))
    assert (parsed["nan"], parsed["inf"], parsed["t"]) == ("nan", "-inf", [1, 2])
    line = LogfmtFormatter().format(record(fields=fields))
    assert line.endswith(' nan=nan inf=-inf obj=object t="[1,2]"')
    # fields that are not a mapping are kept as text rather than dropped or crashing
    assert LogfmtFormatter().format(record(fields="oops")).endswith(" _fields=oops")


def _raise() -> None:
    raise ValueError("bad\nvalue")


def test_exception_is_last_and_escaped() -> None:
    try:
        _raise()
    except ValueError:
        exc_info = sys.exc_info()
    rec = record("failed", level=logging.ERROR, fields={"k": "v"}, exc_info=exc_info)
    line = LogfmtFormatter().format(rec)
    assert "\n" not in line
    pairs = parse_logfmt(line)
    assert [k for k, _ in pairs] == ["ts", "level", "logger", "msg", "k", "exc"]
    exc = dict(pairs)["exc"]
    assert exc.startswith("Traceback (most recent call last):\n")
    assert exc.endswith("ValueError: bad\nvalue")
    assert rec.exc_text == exc  # cached for other handlers, as logging.Formatter does

    parsed = json.loads(JsonFormatter().format(rec))
    assert list(parsed) == ["ts", "level", "logger", "msg", "k", "exc"]
    assert parsed["exc"] == exc


def test_stack_info() -> None:
    rec = record()
    rec.stack_info = "Stack (most recent call last):\n  File x"
    assert json.loads(JsonFormatter().format(rec))["stack"] == rec.stack_info


def test_configure_logging_writes_to_stream(root_logger: logging.Logger) -> None:
    out = io.StringIO()
    handler = configure_logging(LoggingConfig(format="logfmt", level="info"), out)
    assert handler in root_logger.handlers
    log = logging.getLogger("netwatch.daemon")
    log.info("started %s", "x y", extra={"fields": {"iface": "eth1"}})
    text = out.getvalue()
    assert text.count("\n") == 1
    assert text.endswith(' logger=netwatch.daemon msg="started x y" iface=eth1\n')
    assert parse_logfmt(text.rstrip("\n"))[1] == ("level", "info")


def test_configure_logging_defaults_to_stderr(
    root_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(LoggingConfig(format="json", level="info"))
    logging.getLogger("netwatch").warning("to stderr")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert json.loads(captured.err)["msg"] == "to stderr"


@pytest.mark.parametrize(
    ("level", "shown"),
    [
        ("debug", ["debug", "info", "warning", "error"]),
        ("info", ["info", "warning", "error"]),
        ("warning", ["warning", "error"]),
        ("error", ["error"]),
    ],
)
def test_level_filtering(root_logger: logging.Logger, level: str, shown: list[str]) -> None:
    out = io.StringIO()
    configure_logging(LoggingConfig(format="json", level=level), out)
    log = logging.getLogger("netwatch.test")
    log.debug("d")
    log.info("i")
    log.warning("w")
    log.error("e")
    levels = [json.loads(line)["level"] for line in out.getvalue().splitlines()]
    assert levels == shown


def test_reconfigure_replaces_only_its_own_handler(root_logger: logging.Logger) -> None:
    other = logging.StreamHandler(io.StringIO())
    root_logger.addHandler(other)
    first, second = io.StringIO(), io.StringIO()
    h1 = configure_logging(LoggingConfig(format="json", level="info"), first)
    h2 = configure_logging(LoggingConfig(format="logfmt", level="debug"), second)
    assert h1 is not h2
    assert h1 not in root_logger.handlers
    assert h2 in root_logger.handlers
    assert other in root_logger.handlers
    assert root_logger.level == logging.DEBUG
    ours = [h for h in root_logger.handlers if type(h) is type(h2)]
    assert ours == [h2]

    logging.getLogger("netwatch.test").debug("after reload")
    assert first.getvalue() == ""
    assert second.getvalue().endswith(' msg="after reload"\n')

    # the same config again: still exactly one handler of ours
    h3 = configure_logging(LoggingConfig(format="logfmt", level="debug"), second)
    assert [h for h in root_logger.handlers if type(h) is type(h3)] == [h3]


def test_configure_logging_rejects_unknown_values(root_logger: logging.Logger) -> None:
    with pytest.raises(ValueError, match="level"):
        configure_logging(LoggingConfig(format="json", level="loud"), io.StringIO())
    with pytest.raises(ValueError, match="format"):
        configure_logging(LoggingConfig(format="xml", level="info"), io.StringIO())


def _alert(**kw: Any) -> Alert:
    base: dict[str, Any] = {
        "ts": T0,
        "rule": "cloud_registration",
        "severity": Severity.HIGH,
        "device": "lobby-cam",
        "device_ip": "192.168.1.20",
        "summary": "registers with a vendor cloud",
    }
    return Alert(**(base | kw))


def test_alert_fields_pick_and_skip_none() -> None:
    alert = _alert(peer_ip="203.0.113.9", peer_port=443, proto="tcp", peer_asn=64500)
    assert alert_fields(alert.record(count=3)) == {
        "rule": "cloud_registration",
        "severity": "high",
        "device": "lobby-cam",
        "device_ip": "192.168.1.20",
        "peer_ip": "203.0.113.9",
        "peer_port": 443,
        "proto": "tcp",
        "peer_asn": 64500,
        "count": 3,
    }
    assert alert_fields({}) == {}


def test_hostile_alert_logs_as_one_line(root_logger: logging.Logger) -> None:
    name = "cam.evil\nts=x level=critical msg=\x1b[2Jforged"
    alert = _alert(peer_name=name, peer_country="CN", service="p2p")
    out = io.StringIO()
    configure_logging(LoggingConfig(format="logfmt", level="info"), out)
    logging.getLogger("netwatch.alert").warning(
        "%s", alert.one_line(), extra={"fields": alert_fields(alert.record())}
    )
    text = out.getvalue()
    assert text.count("\n") == 1
    pairs = dict(parse_logfmt(text.rstrip("\n")))
    assert pairs["peer_name"] == name
    assert pairs["msg"] == alert.one_line()
    assert pairs["level"] == "warning"
