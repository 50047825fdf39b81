"""The Slack sink: one incoming-webhook message per batch, ``{text, blocks}``.

``text`` (the notification fallback) has one line per alert in the terminal form
(:func:`~netwatch.alerts.model.line_of`: ``[severity] rule camera -> peer CC: summary``, the
arrow from the peer on inbound alerts, none without a peer); ``blocks`` holds one mrkdwn section per
alert. ``&``, ``<`` and ``>`` are escaped as Slack requires. Batches are capped at 20 alerts
(Slack allows about one message a second; 429 answers carry ``Retry-After``).

Config read: ``sinks[].url_file`` or ``url_env`` (secret). Known limits: no attachments or
colours; text over Slack's size limits is not truncated beyond the batch cap.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from netwatch.alerts.model import line_of
from netwatch.config.schema import SinkConfig
from netwatch.sinks.base import Delivery, HttpSink, Record


def slack_escape(text: str) -> str:
    """Escape the three characters Slack treats as markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class SlackSink(HttpSink):
    """Posts batches of alerts to a Slack incoming webhook."""

    max_batch = 20

    def __init__(self, config: SinkConfig, **options: Any) -> None:
        super().__init__(config, **options)
        self._url = self._secret("url", config.url_file, config.url_env)

    @staticmethod
    def body(payloads: Sequence[Record]) -> Record:
        """The message for a batch of alert records."""
        lines = [slack_escape(line_of(r)) for r in payloads]
        blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": t}} for t in lines]
        return {"text": "\n".join(lines), "blocks": blocks}

    def send(self, payloads: Sequence[Record]) -> Delivery:
        data = json.dumps(self.body(payloads), separators=(",", ":")).encode()
        return self.post_json(self._url.reveal(), data)
