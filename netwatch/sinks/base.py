"""The sink base class, its registry, secrets handling and the HTTP helper sinks share.

A sink turns alert records (``Alert.record(count)``, as stored in the outbox) into one
delivery attempt and reports a :class:`Delivery`. Subclasses register themselves by class
name (``AlertmanagerSink`` -> ``alertmanager``, the config ``type``); a duplicate name fails
at import. ``accepts`` applies the sink's ``rules``, ``min_severity`` and ``groups`` filters.

Secrets (``url_file``/``url_env``, ``routing_key_file``/``routing_key_env``) are read once at
construction, held in :class:`Secret` (which never prints its value) and scrubbed from every
error text a sink returns; ``repr(sink)`` shows only its type and name.

HTTP: ``urllib.request`` with a timeout; 2xx is success, 429/5xx and network errors are
retryable (``Retry-After`` in seconds or as an HTTP-date is passed on), other 4xx are
permanent. Known limit: HTTP-date parsing uses the injected wall clock of the sink.
"""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, ClassVar

from netwatch.alerts.model import Severity
from netwatch.config.schema import DEFAULT_GROUP, SinkConfig

Record = dict[str, Any]


class SinkError(Exception):
    """A sink cannot be built (missing secret, unknown type); never carries a secret."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """What one delivery attempt did. ``permanent``: retrying cannot help (HTTP 4xx)."""

    ok: bool
    retry_after: float | None = None
    error: str = ""
    permanent: bool = False

    @classmethod
    def success(cls) -> Delivery:
        return cls(True)

    @classmethod
    def failure(
        cls, error: str, retry_after: float | None = None, *, permanent: bool = False
    ) -> Delivery:
        return cls(False, retry_after, error, permanent)


class Secret:
    """A secret string that never shows itself in repr or str."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


def read_secret(
    name: str, what: str, file: Path | None, env: str | None, getenv: Callable[[str], str | None]
) -> Secret:
    """The secret from ``file`` (stripped) or the environment variable ``env``."""
    if file is not None:
        try:
            value = file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SinkError(
                f"sink {name}: cannot read {what}_file {file}: {exc.strerror}"
            ) from None
        source = f"{what}_file {file}"
    elif env is not None:
        value = (getenv(env) or "").strip()
        source = f"{what}_env {env}"
    else:
        raise SinkError(f"sink {name}: set {what}_file or {what}_env")
    if not value:
        raise SinkError(f"sink {name}: {source} is empty or unset")
    return Secret(value)


@dataclass(frozen=True, slots=True)
class HttpResult:
    """The part of an HTTP response a sink needs."""

    status: int
    retry_after: str | None = None
    error: str = ""


HttpPost = Callable[[str, bytes, Mapping[str, str], float], HttpResult]


def urllib_post(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> HttpResult:
    """POST with urllib; status 0 and an error text when no HTTP answer came."""
    req = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            resp.read()
            return HttpResult(resp.status)
    except urllib.error.HTTPError as exc:
        with exc:
            return HttpResult(exc.code, exc.headers.get("Retry-After"), f"HTTP {exc.code}")
    except urllib.error.URLError as exc:
        return HttpResult(0, None, f"connection failed: {exc.reason}")
    except (OSError, ValueError) as exc:
        return HttpResult(0, None, f"request failed: {type(exc).__name__}")


def parse_retry_after(value: str | None, now: float) -> float | None:
    """``Retry-After`` as seconds from ``now`` (delta-seconds or HTTP-date), else None."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


class Sink:
    """Base of all sinks: filters, secrets, and ``send(records) -> Delivery``."""

    registry: ClassVar[dict[str, type[Sink]]] = {}
    name_: ClassVar[str] = ""
    max_batch: ClassVar[int] = 100

    def __init_subclass__(cls, *, abstract: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if abstract:
            return
        kind = cls.__name__.removesuffix("Sink").lower()
        if kind in Sink.registry:
            raise TypeError(f"sink type {kind!r} is defined twice ({Sink.registry[kind]}, {cls})")
        cls.name_ = kind
        Sink.registry[kind] = cls

    def __init__(self, config: SinkConfig, *, environ: Mapping[str, str] | None = None) -> None:
        self.config = config
        self.name = config.name
        env: Mapping[str, str] = os.environ if environ is None else environ
        # a closure, so neither repr() nor vars() of the sink shows the environment
        self._getenv: Callable[[str], str | None] = lambda key: env.get(key)  # noqa: PLW0108
        self._secrets: list[Secret] = []
        self._min = Severity(config.min_severity)

    def _secret(self, what: str, file: Path | None, env: str | None) -> Secret:
        secret = read_secret(self.name, what, file, env, self._getenv)
        self._secrets.append(secret)
        return secret

    def scrub(self, text: str) -> str:
        """``text`` with every secret of this sink replaced by ``***``."""
        for secret in self._secrets:
            text = text.replace(secret.reveal(), "***")
        return text

    def accepts(self, record: Mapping[str, Any], group: str | None = None) -> bool:
        """True when this sink wants the alert (rules, min_severity, groups filters)."""
        cfg = self.config
        if cfg.rules and record.get("rule") not in cfg.rules:
            return False
        try:
            if not Severity(str(record.get("severity"))).at_least(self._min):
                return False
        except ValueError:
            return False
        return not cfg.groups or (group or DEFAULT_GROUP) in cfg.groups

    def send(self, payloads: Sequence[Record]) -> Delivery:
        """Deliver a batch of alert records (at most ``max_batch``)."""
        raise NotImplementedError

    def note(self, record: Record, now: float, *, queued: bool = True) -> None:
        """An accepted alert was emitted (``queued``: it is in the outbox for this sink) or
        seen again (a suppressed repeat) at wall time ``now``. For sinks that keep alerts
        firing, such as Alertmanager's; nothing by default."""

    def refresh(self, now: float) -> int:
        """Periodic work (re-send firing alerts, resolve quiet ones); returns requests made."""
        return 0

    def close(self) -> None:
        """Release files or sockets."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    __str__ = __repr__


class HttpSink(Sink, abstract=True):
    """A sink that POSTs JSON over HTTP (injected ``http`` and wall ``clock`` for tests)."""

    def __init__(
        self,
        config: SinkConfig,
        *,
        environ: Mapping[str, str] | None = None,
        http: HttpPost = urllib_post,
        clock: Callable[[], float] = time.time,
        timeout_s: float = 10.0,
    ) -> None:
        super().__init__(config, environ=environ)
        self._http = http
        self._clock = clock
        self.timeout_s = timeout_s

    def post_json(self, url: str, body: bytes, ok: Callable[[int], bool] | None = None) -> Delivery:
        """POST one JSON body and classify the answer."""
        headers = {"Content-Type": "application/json", "User-Agent": "netwatch"}
        res = self._http(url, body, headers, self.timeout_s)
        if (ok or _is_2xx)(res.status):
            return Delivery.success()
        error = self.scrub(res.error or f"HTTP {res.status}")
        retryable = res.status in (0, 408, 429) or res.status >= 500
        after = parse_retry_after(res.retry_after, self._clock())
        return Delivery.failure(error, after, permanent=not retryable)


def _is_2xx(status: int) -> bool:
    return 200 <= status < 300
