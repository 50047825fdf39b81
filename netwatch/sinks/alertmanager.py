"""The Alertmanager sink: ``POST /api/v2/alerts`` with a JSON array of postable alerts.

Labels carry the identity (DESIGN.md): ``alertname`` (the rule id), ``severity``,
``device``, ``device_ip`` and ``peer`` (the peer name seen on the wire, else its address);
empty values are left out, as Alertmanager treats them as absent. Everything else goes in
annotations (``summary``, ``evidence`` as compact JSON, the other non-null record fields
as strings). ``startsAt`` is the alert time and ``endsAt`` ``ends_after_s`` later (default
one hour, the default suppression window), so an unrepeated alert resolves by itself.

Config read: ``sinks[].urls`` (every Alertmanager of an HA cluster; the batch counts as
delivered when at least one accepts it). Known limits: no TLS client options; resolved
alerts are not re-sent.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from netwatch.alerts.model import rfc3339
from netwatch.config.schema import SinkConfig
from netwatch.sinks.base import Delivery, HttpSink, Record, SinkError

API_PATH = "/api/v2/alerts"
LABEL_KEYS = ("device", "device_ip")


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def labels_of(record: Mapping[str, Any]) -> dict[str, str]:
    """The Alertmanager label set of an alert record (its identity)."""
    peer = record.get("peer_name") or record.get("peer_ip") or ""
    labels = {"alertname": str(record.get("rule", "")), "severity": str(record.get("severity"))}
    labels.update({k: str(record[k]) for k in LABEL_KEYS if record.get(k)})
    if peer:
        labels["peer"] = str(peer)
    return labels


def annotations_of(record: Mapping[str, Any]) -> dict[str, str]:
    """Summary, evidence (JSON) and the remaining non-null record fields, as strings."""
    skip = {"rule", "severity", "ts", "summary", "evidence", *LABEL_KEYS}
    notes = {
        "summary": str(record.get("summary", "")),
        "evidence": _compact(record.get("evidence", {})),
    }
    notes.update({k: str(v) for k, v in record.items() if k not in skip and v is not None})
    return notes


def am_alert(record: Mapping[str, Any], ends_after_s: float, generator_url: str = "") -> Record:
    """One postable alert (API v2 ``postableAlert``) from an alert record."""
    starts = datetime.fromisoformat(str(record["ts"]).replace("Z", "+00:00")).timestamp()
    alert: Record = {
        "labels": labels_of(record),
        "annotations": annotations_of(record),
        "startsAt": rfc3339(starts),
        "endsAt": rfc3339(starts + ends_after_s),
    }
    if generator_url:
        alert["generatorURL"] = generator_url
    return alert


def fingerprint(labels: Mapping[str, str]) -> str:
    """A stable hex digest of a label set (the identity Alertmanager de-duplicates on)."""
    return hashlib.sha256(_compact(dict(labels)).encode()).hexdigest()[:16]


class AlertmanagerSink(HttpSink):
    """Posts alert batches to every configured Alertmanager."""

    def __init__(
        self,
        config: SinkConfig,
        *,
        ends_after_s: float = 3600.0,
        generator_url: str = "",
        **options: Any,
    ) -> None:
        super().__init__(config, **options)
        if not config.urls:
            raise SinkError(f"sink {config.name}: urls is required")
        self.urls = tuple(u.rstrip("/") + API_PATH for u in config.urls)
        self.ends_after_s = ends_after_s
        self.generator_url = generator_url

    def send(self, payloads: Sequence[Record]) -> Delivery:
        body = [am_alert(r, self.ends_after_s, self.generator_url) for r in payloads]
        data = json.dumps(body, separators=(",", ":")).encode()
        results = [self.post_json(url, data) for url in self.urls]
        if any(r.ok for r in results):
            return Delivery.success()
        afters = [r.retry_after for r in results if r.retry_after is not None]
        errors = "; ".join(f"urls[{i}]: {r.error}" for i, r in enumerate(results))
        permanent = all(r.permanent for r in results)
        return Delivery.failure(errors, max(afters) if afters else None, permanent=permanent)
