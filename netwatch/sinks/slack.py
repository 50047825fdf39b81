"""The Slack sink: one incoming-webhook message per batch, ``{text, blocks}``.

``text`` (the notification fallback) has one line per alert in the terminal form
(:func:`~netwatch.alerts.model.line_of`: ``[severity] rule camera -> peer CC: summary``, the
arrow from the peer on inbound alerts, none without a peer; an incident's end reads
``[severity] rule ENDED ...`` with its span and peers). ``blocks`` holds, per alert, a
``header`` (severity and rule, ``ENDED`` for an incident's end) and a ``section`` whose text
is the summary, the traffic and the findings folded into it, whose ``fields`` are the rows
of :func:`~netwatch.sinks.message.fields_of` (sensor, camera with address, MAC and model,
group, platform, traffic with its arrow, country/AS, bytes, first and last seen, how often,
an ended incident's peers) and whose accessory is a button to the camera's dashboard
(``alerts.dashboard_url``) when one is configured; more than ten fields continue in a
second section.

Every value from the wire is kept on one line (control characters become spaces, so no
name can forge a field) and has ``&``, ``<`` and ``>`` escaped as Slack requires (so no text
can form a link or a mention); the body is built as data and serialised by ``json.dumps``.
Slack's block limits are kept so a message is never refused as invalid: a header at most
150 characters, section text at most 3000, a field at most 2000, at most 10 fields per
section, a button URL at most 3000 (a longer link is left out), at most 50 blocks
(``max_batch`` 16 alerts of at most three blocks each). Slack allows about one message a
second; 429 answers carry ``Retry-After``.

Config read: ``sinks[].url_file`` or ``url_env`` (secret), ``ended`` (default true),
``alerts.dashboard_url`` (through :meth:`~netwatch.sinks.base.Sink.use_alerts`). Known
limits: no attachments or colours.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

from netwatch.alerts.model import Status, line_of, status_of
from netwatch.config.schema import SinkConfig
from netwatch.sinks.base import Delivery, HttpSink, Record
from netwatch.sinks.message import dashboard_link, fields_of, folded_of, one_line, traffic_of

MAX_HEADER: Final = 150
MAX_TEXT: Final = 3000
MAX_FIELD: Final = 2000
MAX_FIELDS: Final = 10
MAX_URL: Final = 3000


def slack_escape(text: str) -> str:
    """Escape the three characters Slack treats as markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _safe(value: object) -> str:
    """A value from the wire for mrkdwn: one line, Slack's markup characters escaped."""
    return slack_escape(one_line(value))


def _mrkdwn(text: str) -> Record:
    return {"type": "mrkdwn", "text": text}


def alert_blocks(record: Mapping[str, Any], dashboard_url: str | None = None) -> list[Record]:
    """The blocks of one alert record: header, section (text, fields, dashboard button)."""
    ended = status_of(record) is Status.ENDED
    head = f"[{record.get('severity')}] {record.get('rule')}" + (" ENDED" if ended else "")
    lines = [f"*{_safe(record.get('summary', ''))}*"]
    traffic = traffic_of(record)
    if traffic:
        lines.append(_safe(traffic))
    lines += [f"\u2022 also {_safe(f)}" for f in folded_of(record)]
    fields = [
        _mrkdwn(_cut(f"*{title}*\n{_safe(value)}", MAX_FIELD))
        for title, value in fields_of(record)[2:]  # severity and rule are in the header
    ]
    section: Record = {
        "type": "section",
        "text": _mrkdwn(_cut("\n".join(lines), MAX_TEXT)),
        "fields": fields[:MAX_FIELDS],
    }
    link = dashboard_link(dashboard_url, record)
    if link and len(link) <= MAX_URL:
        section["accessory"] = {
            "type": "button",
            "text": {"type": "plain_text", "text": "Camera dashboard"},
            "url": link,
        }
    blocks: list[Record] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(head, MAX_HEADER)}},
        section,
    ]
    if fields[MAX_FIELDS:]:
        blocks.append({"type": "section", "fields": fields[MAX_FIELDS : 2 * MAX_FIELDS]})
    return blocks


class SlackSink(HttpSink):
    """Posts batches of alerts to a Slack incoming webhook."""

    max_batch = 16
    ENDED_DEFAULT = True

    def __init__(self, config: SinkConfig, **options: Any) -> None:
        super().__init__(config, **options)
        self._url = self._secret("url", config.url_file, config.url_env)

    def body(self, payloads: Sequence[Record]) -> Record:
        """The message for a batch of alert records."""
        lines = [slack_escape(line_of(r)) for r in payloads]
        blocks = [b for r in payloads for b in alert_blocks(r, self.dashboard_url)]
        return {"text": "\n".join(lines), "blocks": blocks}

    def send(self, payloads: Sequence[Record]) -> Delivery:
        data = json.dumps(self.body(payloads), separators=(",", ":")).encode()
        return self.post_json(self._url.reveal(), data)
