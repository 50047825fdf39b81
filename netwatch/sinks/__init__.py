"""Alert sinks: one module per destination, registered by class name.

``BUILTIN_SINKS`` is the explicit built-in set (a test checks it against the registry);
``build_sinks(configs)`` builds one sink per ``sinks[]`` entry and fails with
:class:`SinkError` (no secret in the text) on an unknown type or an unreadable secret.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

from netwatch.config.schema import SinkConfig
from netwatch.sinks.alertmanager import AlertmanagerSink
from netwatch.sinks.base import Delivery, HttpSink, Secret, Sink, SinkError
from netwatch.sinks.jsonl import JsonlSink
from netwatch.sinks.pagerduty import PagerdutySink
from netwatch.sinks.slack import SlackSink
from netwatch.sinks.smtp import SmtpSink
from netwatch.sinks.syslog import SyslogSink
from netwatch.sinks.teams import TeamsSink
from netwatch.sinks.webhook import WebhookSink

BUILTIN_SINKS: tuple[type[Sink], ...] = (
    JsonlSink,
    AlertmanagerSink,
    WebhookSink,
    SlackSink,
    PagerdutySink,
    SyslogSink,
    TeamsSink,
    SmtpSink,
)

__all__ = [
    "BUILTIN_SINKS",
    "AlertmanagerSink",
    "Delivery",
    "HttpSink",
    "JsonlSink",
    "PagerdutySink",
    "Secret",
    "Sink",
    "SinkError",
    "SlackSink",
    "SmtpSink",
    "SyslogSink",
    "TeamsSink",
    "WebhookSink",
    "build_sinks",
]


def build_sinks(configs: Iterable[SinkConfig], **options: Any) -> list[Sink]:
    """One sink per config entry; ``options`` (``environ``; for HTTP sinks ``http``,
    ``clock``, ``timeout_s``; for syslog ``timeout_s``, ``hostname``, ``facility``...) are
    passed to every sink whose constructor names them."""
    sinks: list[Sink] = []
    for config in configs:
        cls = Sink.registry.get(config.type)
        if cls is None:
            raise SinkError(f"sink {config.name}: type {config.type!r} is not supported yet")
        if issubclass(cls, HttpSink):
            kw = options
        else:
            params = inspect.signature(cls).parameters
            kw = {k: v for k, v in options.items() if k in params and k != "config"}
        sinks.append(cls(config, **kw))
    return sinks
