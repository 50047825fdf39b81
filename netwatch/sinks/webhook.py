"""The generic webhook sink: Alertmanager's webhook body (version "4"), so receivers that
already understand Alertmanager work unchanged.

Each batch is one POST: ``status`` firing, ``receiver`` the sink name, ``commonLabels`` the
labels all alerts of the batch share, ``alerts[]`` with the same labels and annotations the
Alertmanager sink sends plus ``status`` and a label-set ``fingerprint``.

Config read: ``sinks[].url_file`` or ``url_env`` (the URL is a secret: it never appears in
errors, logs or repr) and the HTTP client options of :mod:`netwatch.sinks.base` (basic auth
or bearer token, ``ca_file``, client certificate, ``server_name``). Known limits: no resolved
notifications; no other custom headers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from netwatch.config.schema import SinkConfig
from netwatch.sinks.alertmanager import am_alert, fingerprint
from netwatch.sinks.base import Delivery, HttpSink, Record


class WebhookSink(HttpSink):
    """POSTs Alertmanager-style webhook bodies to a secret URL."""

    def __init__(self, config: SinkConfig, *, ends_after_s: float = 3600.0, **options: Any):
        super().__init__(config, **options)
        self._url = self._secret("url", config.url_file, config.url_env)
        self.ends_after_s = ends_after_s

    def body(self, payloads: Sequence[Record]) -> Record:
        """The webhook body for a batch of alert records."""
        alerts = [am_alert(r, self.ends_after_s) for r in payloads]
        for alert in alerts:
            alert.update(status="firing", generatorURL="", fingerprint=fingerprint(alert["labels"]))
        common = dict(alerts[0]["labels"]) if alerts else {}
        for alert in alerts[1:]:
            common = {k: v for k, v in common.items() if alert["labels"].get(k) == v}
        return {
            "version": "4",
            "groupKey": f"netwatch/{self.name}",
            "truncatedAlerts": 0,
            "status": "firing",
            "receiver": self.name,
            "groupLabels": {},
            "commonLabels": common,
            "commonAnnotations": {},
            "externalURL": "",
            "alerts": alerts,
        }

    def send(self, payloads: Sequence[Record]) -> Delivery:
        data = json.dumps(self.body(payloads), separators=(",", ":")).encode()
        return self.post_json(self._url.reveal(), data)
