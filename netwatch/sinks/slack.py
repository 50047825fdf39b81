"""The Slack sink: one incoming-webhook message per batch, ``{text, blocks}``.

``text`` (the notification fallback) has one line per alert in the terminal form
(``[severity] rule device -> peer CC: summary``); ``blocks`` holds one mrkdwn section per
alert. ``&``, ``<`` and ``>`` are escaped as Slack requires. Batches are capped at 20 alerts
(Slack allows about one message a second; 429 answers carry ``Retry-After``).

Config read: ``sinks[].url_file`` or ``url_env`` (secret). Known limits: no attachments or
colours; text over Slack's size limits is not truncated beyond the batch cap.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from netwatch.config.schema import SinkConfig
from netwatch.sinks.base import Delivery, HttpSink, Record


def slack_escape(text: str) -> str:
    """Escape the three characters Slack treats as markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def line_of(record: Mapping[str, Any]) -> str:
    """The one-line human form of an alert record (as ``Alert.one_line``)."""
    peer = record.get("peer_name") or record.get("peer_ip") or "-"
    where = f" {record['peer_country']}" if record.get("peer_country") else ""
    head = f"[{record.get('severity')}] {record.get('rule')} {record.get('device')}"
    return f"{head} -> {peer}{where}: {record.get('summary', '')}"


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
