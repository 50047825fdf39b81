"""The generic webhook sink: Alertmanager's webhook body (version "4"), so receivers that
already understand Alertmanager work unchanged, plus what a person or a script reads.

Each batch is one POST (a notification that carries several reports about one camera,
:mod:`netwatch.alerts.grouping`, is one batch with an alert per report): ``status`` firing
(``resolved`` when every alert of the batch is an incident's end), ``receiver`` the sink
name, ``commonLabels`` the labels all alerts of the batch share, ``alerts[]`` with the same
labels and annotations the Alertmanager sink sends plus ``status`` (``firing``, or
``resolved`` for an incident's end, whose ``startsAt`` and ``endsAt`` are its first and last
sighting) and a label-set ``fingerprint``. Beyond Alertmanager's fields, each alert carries
``text`` (the plain-text message of :func:`~netwatch.sinks.message.plain_text`: heading,
summary, sensor, camera, group, platform, traffic with its arrow, country/AS, bytes,
first/last seen, folded findings, dashboard link), ``record`` (the alert record itself, with
``status`` ``firing`` or ``ended``) and ``dashboard_url`` (``alerts.dashboard_url`` filled
in, or null); the body's ``text`` joins the alerts' texts. The body is built as data and
serialised by ``json.dumps``, so no value from the wire can break it.

Config read: ``sinks[].url_file`` or ``url_env`` (the URL is a secret: it never appears in
errors, logs or repr), ``ended`` (default true), ``alerts.dashboard_url``, and the HTTP
client options of :mod:`netwatch.sinks.base` (basic auth or bearer token, ``ca_file``,
client certificate, ``server_name``). Known limits: no other custom headers; an end's
``severity`` label is the incident's worst, so its fingerprint differs from a firing alert's
sent at a lower severity.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from netwatch.alerts.grouping import members
from netwatch.alerts.model import Status, rfc3339, status_of
from netwatch.config.schema import SinkConfig
from netwatch.sinks.alertmanager import am_alert, fingerprint
from netwatch.sinks.base import Delivery, HttpSink, Record
from netwatch.sinks.message import dashboard_link, plain_text, seconds_of


class WebhookSink(HttpSink):
    """POSTs Alertmanager-style webhook bodies to a secret URL."""

    ENDED_DEFAULT = True

    def __init__(self, config: SinkConfig, *, ends_after_s: float = 3600.0, **options: Any):
        super().__init__(config, **options)
        self._url = self._secret("url", config.url_file, config.url_env)
        self.ends_after_s = ends_after_s

    def alert(self, record: Mapping[str, Any]) -> Record:
        """One webhook alert (Alertmanager's fields and netwatch's) for one record."""
        ended = status_of(record) is Status.ENDED
        alert = am_alert(record, self.ends_after_s)
        if ended:
            first, last = seconds_of(record.get("first_seen")), seconds_of(record.get("last_seen"))
            if first is not None and last is not None:
                alert.update(startsAt=rfc3339(first), endsAt=rfc3339(max(first, last)))
        link = dashboard_link(self.dashboard_url, record)
        alert.update(
            status="resolved" if ended else "firing",
            generatorURL="",
            fingerprint=fingerprint(alert["labels"]),
            text=plain_text(record, link),
            record={**record, "status": (Status.ENDED if ended else Status.FIRING).value},
            dashboard_url=link,
        )
        return alert

    def body(self, payloads: Sequence[Record]) -> Record:
        """The webhook body for a batch of alert records (a notification's grouped reports
        are alerts of their own, as in an Alertmanager group notification)."""
        alerts = [self.alert(report) for r in payloads for report in members(r)]
        common = dict(alerts[0]["labels"]) if alerts else {}
        for alert in alerts[1:]:
            common = {k: v for k, v in common.items() if alert["labels"].get(k) == v}
        resolved = bool(alerts) and all(a["status"] == "resolved" for a in alerts)
        return {
            "version": "4",
            "groupKey": f"netwatch/{self.name}",
            "truncatedAlerts": 0,
            "status": "resolved" if resolved else "firing",
            "receiver": self.name,
            "groupLabels": {},
            "commonLabels": common,
            "commonAnnotations": {},
            "externalURL": "",
            "text": "\n\n".join(a["text"] for a in alerts),
            "alerts": alerts,
        }

    def send(self, payloads: Sequence[Record]) -> Delivery:
        data = json.dumps(self.body(payloads), separators=(",", ":")).encode()
        return self.post_json(self._url.reveal(), data)
