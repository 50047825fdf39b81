"""The PagerDuty sink: one Events API v2 ``trigger`` per alert, one ``resolve`` per
incident that ended.

``dedup_key`` is the SHA-256 of the incident identity (rule, device, what was reached: the
record's ``reached``; and the sensor's ``site`` when set), so every report of one incident
(rotating relays of one platform included) updates one open PagerDuty incident, and the end
of the netwatch incident (``status: ended``) resolves it with the same key: PagerDuty's own
choice of incident life cycle is kept, netwatch only says when it stopped seeing it (set
``ended: false`` on the sink to leave resolving to people). Severity maps
critical->critical, high->error, medium->warning, low and info->info. 202 is success; 429
and 5xx are retried (with ``Retry-After``); other answers are permanent failures.
``summary`` is cut to 1024 characters. A notification that carries several reports of one
camera (:mod:`netwatch.alerts.grouping`) is one trigger, keyed by its alert's incident, its
summary naming the others (``+N more: ...``) and ``custom_details`` listing them.

Config read: ``sinks[].routing_key_file`` or ``routing_key_env`` (secret, never in errors,
logs or repr), ``ended`` (default true). Known limits: no acknowledge events; one alert per
request; a resolve sent while its trigger still waits for a retry (an outage) can arrive
first, leaving the incident open; a grouped notification's page resolves when its alert's
incident ends (the reports grouped with it resolve their own keys, which never triggered:
PagerDuty drops those).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from netwatch.alerts.model import Status, grouped_tail, status_of
from netwatch.config.schema import SinkConfig
from netwatch.sinks.base import Delivery, HttpSink, Record

ENQUEUE_URL = "https://events.pagerduty.com/v2/enqueue"
SEVERITY = {"critical": "critical", "high": "error", "medium": "warning", "low": "info"}


def dedup_key(record: Mapping[str, Any]) -> str:
    """A stable key from the incident identity (rule, device, reached; site when set)."""
    reached = record.get("reached") or record.get("peer_name") or record.get("peer_ip") or ""
    identity = [record.get("rule"), record.get("device"), reached]
    if record.get("site"):
        identity.append(record["site"])
    return hashlib.sha256(json.dumps(identity).encode()).hexdigest()


class PagerdutySink(HttpSink):
    """Sends each alert as a PagerDuty Events v2 trigger."""

    max_batch = 1
    ENDED_DEFAULT = True

    def __init__(self, config: SinkConfig, *, url: str = ENQUEUE_URL, **options: Any) -> None:
        super().__init__(config, **options)
        self._key = self._secret("routing_key", config.routing_key_file, config.routing_key_env)
        self.url = url

    def event(self, record: Mapping[str, Any]) -> Record:
        """The Events v2 body for one alert record: a resolve for an incident's end."""
        if status_of(record) is Status.ENDED:
            return {
                "routing_key": self._key.reveal(),
                "event_action": "resolve",
                "dedup_key": dedup_key(record),
            }
        return {
            "routing_key": self._key.reveal(),
            "event_action": "trigger",
            "dedup_key": dedup_key(record),
            "payload": {
                "summary": (str(record.get("summary", "")) + grouped_tail(record))[:1024]
                or str(record.get("rule")),
                "source": str(record.get("device", "")),
                "severity": SEVERITY.get(str(record.get("severity")), "info"),
                "timestamp": record.get("ts"),
                "component": record.get("device_ip"),
                "class": record.get("rule"),
                "custom_details": dict(record),
            },
        }

    def send(self, payloads: Sequence[Record]) -> Delivery:
        for record in payloads:
            data = json.dumps(self.event(record), separators=(",", ":")).encode()
            result = self.post_json(self.url, data, ok=lambda status: status == 202)
            if not result.ok:
                return result
        return Delivery.success()
