"""The daemon's own log lines: one record per line, as JSON or logfmt, safe for hostile values.

:func:`configure_logging` reads the ``logging:`` section of the config
(:class:`netwatch.config.schema.LoggingConfig`: ``format`` json|logfmt, ``level``
debug|info|warning|error) and installs one stream handler (stderr by default, which systemd
sends to the journal) on the root logger. Calling it again, as the daemon does on SIGHUP,
replaces the handler it installed before and leaves every other handler alone.

Every line carries, in this order: ``ts`` (RFC 3339 UTC, milliseconds, ``Z``), ``level``
(lowercase), ``logger``, ``msg`` (the formatted message), then the structured fields passed
as ``extra={"fields": {...}}`` (see :func:`alert_fields` for an alert's), then ``exc``
(the formatted traceback) when there is one and ``stack`` when ``stack_info`` was asked for.
A field whose key is already taken (``msg``, or a key that sanitises to one already used) is
written with ``_`` prefixes until it is unique, so nothing is silently dropped.

Injection guarantee: the daemon logs values taken from packets (DNS names, TLS SNI, HTTP
Host), so a value may hold anything. Whatever it holds, one record is exactly one line
and a value cannot forge another key or record:

* JSON: ``json.dumps(..., ensure_ascii=True)``; every control and non-ASCII character is
  a ``\\uXXXX`` escape, so the line is pure printable ASCII. Non-finite floats become strings
  (``"nan"``, ``"inf"``) so the line stays strict JSON.
* logfmt: keys are reduced to ``[A-Za-z0-9_.-]`` (anything else becomes ``_``). A value that
  is empty or holds a space, ``"``, ``=``, ``\\`` or any character Python does not call
  printable (C0/C1 controls, DEL, ESC of ANSI sequences, NUL, U+2028, bidi overrides, lone
  surrogates...) is written in double quotes with ``\\"``, ``\\\\``, ``\\n``, ``\\r``, ``\\t``
  and ``\\xNN`` / ``\\uNNNN`` / ``\\UNNNNNNNN`` escapes; printable non-ASCII text (``é``,
  ``日本``) is kept as it is. ``None`` is ``null``, booleans ``true``/``false``, lists and
  dicts are JSON-encoded and then always quoted (escaped the same way).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping
from typing import Any, Final, TextIO

from netwatch.config.schema import LoggingConfig

__all__ = [
    "ALERT_FIELDS",
    "JsonFormatter",
    "LogfmtFormatter",
    "alert_fields",
    "configure_logging",
]

LEVELS: Final[Mapping[str, int]] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

# The alert-record fields worth a log line (the rest, summary and evidence, are in msg or
# too large); see netwatch.alerts.model.Alert.record.
ALERT_FIELDS: Final[tuple[str, ...]] = (
    "rule",
    "severity",
    "device",
    "device_ip",
    "peer_ip",
    "peer_port",
    "proto",
    "peer_country",
    "peer_asn",
    "peer_name",
    "service",
    "flow_uid",
    "count",
)

_KEY_CHARS: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
_NEEDS_QUOTES: Final = frozenset(' "=\\')
_ESCAPES: Final[Mapping[str, str]] = {
    '"': '\\"',
    "\\": "\\\\",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}


def rfc3339_ms(created: float) -> str:
    """``created`` (seconds since the epoch) as RFC 3339 UTC with milliseconds and ``Z``.

    Rounded to the nearest millisecond (``record.created`` is a float, so truncating would
    turn ``.123`` into ``.122``).
    """
    total_ms = round(created * 1000)
    secs, ms = divmod(total_ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{ms:03d}Z"


def _jsonable(value: Any) -> Any:
    """``value`` with only JSON types inside (non-finite floats and other objects as text)."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    return str(value)


def _base(record: logging.LogRecord) -> dict[str, Any]:
    return {
        "ts": rfc3339_ms(record.created),
        "level": record.levelname.lower(),
        "logger": record.name,
        "msg": record.getMessage(),
    }


def _escape_char(ch: str) -> str:
    esc = _ESCAPES.get(ch)
    if esc is not None:
        return esc
    if ch == " " or ch.isprintable():
        return ch
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def logfmt_value(value: Any) -> str:
    """One logfmt value: bare when safe, else double-quoted with escapes (never a newline)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    if isinstance(value, str):
        text = value
        if text and not any(ch in _NEEDS_QUOTES or not ch.isprintable() for ch in text):
            return text
    else:  # lists, dicts and the rest: JSON text, always quoted
        text = json.dumps(_jsonable(value), ensure_ascii=False, separators=(",", ":"))
    return '"' + "".join(_escape_char(ch) for ch in text) + '"'


def logfmt_key(key: str) -> str:
    """A logfmt key reduced to ``[A-Za-z0-9_.-]`` (other characters become ``_``)."""
    return "".join(ch if ch in _KEY_CHARS else "_" for ch in key) or "_"


class _StructuredFormatter(logging.Formatter):
    """Collects ts, level, logger, msg, fields, exc and stack; subclasses render the line."""

    def _key(self, key: str) -> str:
        return key

    def items(self, record: logging.LogRecord) -> dict[str, Any]:
        """The record's key/value pairs, in line order, with unique keys."""
        out = _base(record)
        fields = getattr(record, "fields", None)
        if isinstance(fields, Mapping):
            for raw_key, value in fields.items():
                key = self._key(str(raw_key))
                while key in out:
                    key = "_" + key
                out[key] = _jsonable(value)
        elif fields is not None:
            out["_fields"] = str(fields)
        if record.exc_info and not record.exc_text:
            # Cached on the record as logging.Formatter does, for other handlers.
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return out


class JsonFormatter(_StructuredFormatter):
    """One JSON object per line, ASCII only (``ensure_ascii=True``)."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(self.items(record), ensure_ascii=True, separators=(",", ":"))


class LogfmtFormatter(_StructuredFormatter):
    """``key=value`` pairs separated by single spaces; values quoted and escaped as needed."""

    def _key(self, key: str) -> str:
        return logfmt_key(key)

    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{k}={logfmt_value(v)}" for k, v in self.items(record).items())


class _NetwatchHandler(logging.StreamHandler[TextIO]):
    """The handler configure_logging installs (the type marks it for replacement)."""


def configure_logging(cfg: LoggingConfig, stream: TextIO | None = None) -> logging.Handler:
    """Install the log handler ``cfg`` asks for on the root logger and return it.

    Replaces a handler installed by an earlier call (the new one is added before the old is
    removed, so a concurrent record is never lost), keeps every other handler, and sets the
    root logger's level. ``stream`` defaults to ``sys.stderr`` at call time.
    """
    try:
        level = LEVELS[cfg.level]
    except KeyError:
        raise ValueError(f"unknown log level {cfg.level!r}") from None
    formatter: logging.Formatter
    if cfg.format == "json":
        formatter = JsonFormatter()
    elif cfg.format == "logfmt":
        formatter = LogfmtFormatter()
    else:
        raise ValueError(f"unknown log format {cfg.format!r}")
    handler = _NetwatchHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    old = [h for h in root.handlers if isinstance(h, _NetwatchHandler)]
    root.addHandler(handler)
    root.setLevel(level)
    for h in old:
        root.removeHandler(h)
        h.close()
    return handler


def remove_logging() -> None:
    """Remove the handler :func:`configure_logging` installed (the daemon is done)."""
    root = logging.getLogger()
    for h in [h for h in root.handlers if isinstance(h, _NetwatchHandler)]:
        root.removeHandler(h)
        h.close()


def alert_fields(record: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of an alert record (``Alert.record()``) worth a log line, without Nones."""
    return {k: record[k] for k in ALERT_FIELDS if record.get(k) is not None}
