"""The Microsoft Teams sink: one Adaptive Card per batch, posted to a Teams webhook.

The body is a Bot Framework ``message`` whose one attachment has the content type
``application/vnd.microsoft.card.adaptive`` and an Adaptive Card (schema version 1.2) as its
``content``: the form both a Workflows flow "post to a channel when a webhook request is
received" (Power Automate; the replacement of Office 365 connectors, which takes Adaptive
Cards only) and a legacy incoming webhook accept. Per alert the card has a heading
(``[severity] rule on device``; ``Attention`` colour for critical and high; ``[severity] rule
ENDED on device`` in ``Good`` colour for an incident's end), the summary, the findings
folded into it, and a fact set: the rows of :func:`~netwatch.sinks.message.fields_of`
(severity, rule, sensor, camera with address, MAC and model, group, platform, traffic with
its arrow, country/AS, bytes, first and last seen, how often, an ended incident's peers);
the card ends with one "Camera dashboard" link per alert (``Action.OpenUrl``) when
``alerts.dashboard_url`` is set. Texts from the wire are cut to
``MAX_TEXT`` characters; Adaptive Card text is plain text with a Markdown subset (bold,
italic, links, lists), so the characters that start one are escaped.

2xx is success (Workflows answers 202 Accepted); 429 and 5xx are retried with
``Retry-After``; other 4xx are permanent (a deleted flow answers 404).

Config read: ``sinks[].url_file`` or ``url_env`` (the URL carries its own signature: a
secret, never in errors, logs or repr), ``ended`` (default true), ``alerts.dashboard_url``.
Known limits: no buttons that act (a Workflows flow posts as its owner and cannot act on
them), only links; batches are capped at ``max_batch`` alerts to stay far under Teams'
28 KB message size.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from netwatch.alerts.model import Status, status_of
from netwatch.config.schema import SinkConfig
from netwatch.sinks.base import Delivery, HttpSink, Record
from netwatch.sinks.message import dashboard_link, fields_of, folded_of

CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
CARD_VERSION = "1.2"
MAX_TEXT = 500
MAX_TITLE = 80  # an action's title (plain text)
URGENT = frozenset({"critical", "high"})
# the Markdown subset Adaptive Cards render: **bold**, _italic_, [link](url), lists
_MARKDOWN = re.compile(r"([\\`*_\[\]])")
_BULLET = re.compile(r"^([-+])(?=\s)")
_NUMBERED = re.compile(r"^(\d+)\.(?=\s)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def card_text(value: object) -> str:
    """A value from a record as card text: one line, cut to ``MAX_TEXT``, Markdown escaped."""
    text = _CONTROL.sub(" ", str(value)).strip()
    if len(text) > MAX_TEXT:
        text = text[: MAX_TEXT - 1] + "\u2026"
    text = _MARKDOWN.sub(r"\\\1", text)
    return _NUMBERED.sub(r"\1\\.", _BULLET.sub(r"\\\1", text))


def alert_elements(record: Mapping[str, Any]) -> list[Record]:
    """The card elements of one alert: heading, summary, folded findings, facts."""
    severity = str(record.get("severity", ""))
    ended = status_of(record) is Status.ENDED
    what = f"{record.get('rule', '')}{' ENDED' if ended else ''}"
    heading = f"[{severity}] {what} on {record.get('device') or '-'}"
    colour = "Good" if ended else "Attention" if severity in URGENT else "Default"
    folded: list[Record] = [
        {"type": "TextBlock", "text": card_text(f"also {f}"), "wrap": True, "isSubtle": True}
        for f in folded_of(record)
    ]
    return [
        {
            "type": "TextBlock",
            "text": card_text(heading),
            "weight": "Bolder",
            "size": "Medium",
            "color": colour,
            "wrap": True,
            "separator": True,
        },
        {"type": "TextBlock", "text": card_text(record.get("summary", "")), "wrap": True},
        *folded,
        {
            "type": "FactSet",
            "facts": [{"title": t, "value": card_text(v)} for t, v in fields_of(record)],
        },
    ]


class TeamsSink(HttpSink):
    """Posts batches of alerts to a Microsoft Teams webhook as one Adaptive Card."""

    max_batch = 10

    def __init__(self, config: SinkConfig, **options: Any) -> None:
        super().__init__(config, **options)
        self._url = self._secret("url", config.url_file, config.url_env)

    ENDED_DEFAULT = True

    def body(self, payloads: Sequence[Record]) -> Record:
        """The message for a batch of alert records."""
        title = "netwatch: 1 alert" if len(payloads) == 1 else f"netwatch: {len(payloads)} alerts"
        elements: list[Record] = [
            {"type": "TextBlock", "text": title, "weight": "Bolder", "size": "Large"}
        ]
        for record in payloads:
            elements.extend(alert_elements(record))
        card: Record = {
            "$schema": CARD_SCHEMA,
            "type": "AdaptiveCard",
            "version": CARD_VERSION,
            "msteams": {"width": "Full"},
            "body": elements,
        }
        links = [(r, dashboard_link(self.dashboard_url, r)) for r in payloads]
        actions = [
            {
                "type": "Action.OpenUrl",
                "title": _CONTROL.sub(" ", f"Dashboard: {r.get('device') or '-'}")[:MAX_TITLE],
                "url": link,
            }
            for r, link in links
            if link
        ]
        if actions:
            card["actions"] = actions
        attachment = {"contentType": CARD_CONTENT_TYPE, "contentUrl": None, "content": card}
        return {"type": "message", "attachments": [attachment]}

    def send(self, payloads: Sequence[Record]) -> Delivery:
        data = json.dumps(self.body(payloads), separators=(",", ":")).encode()
        return self.post_json(self._url.reveal(), data)
