"""The Alertmanager sink: ``POST /api/v2/alerts`` with a JSON array of postable alerts.

Labels carry the identity (DESIGN.md): ``alertname`` (the rule id), ``severity``,
``device`` (the camera's one id, whichever of its IPv4/IPv6 addresses a report came from:
``device_ip`` is an annotation, so one incident seen at two addresses of a dual-stack camera
stays one Alertmanager alert), ``site`` (the sensor's ``site.name``, so two sensors reporting
the same camera behaviour stay two alerts) and ``peer`` (what was reached: the incident's
platform, name, AS or network, so rotating relays are one Alertmanager alert), plus the
routing labels ``group`` (the camera's group), ``vendor`` and ``platform``, so existing
routes can send "wards to the security team, car park to facilities"; empty values are
left out, as Alertmanager treats them as absent.
Everything else goes in annotations (``summary``, ``evidence`` as compact JSON, the other
non-null record fields as strings). A notification that carries several reports
(:mod:`netwatch.alerts.grouping`) is posted as one Alertmanager alert per report: grouping
them is Alertmanager's own job (its routes' ``group_by``), and each resolves on its own.

Life cycle (as Prometheus does it): the first post comes from the durable outbox, with
``startsAt`` the alert time and ``endsAt`` four re-send intervals from now. While the
identity keeps being seen (``note``: emitted or suppressed repeats), :meth:`refresh`
re-posts it every ``resend_s`` with a new ``endsAt``, so an Alertmanager that restarted
learns it again; once it has not been seen for ``resolve_s``, one post with ``endsAt`` =
now resolves it. The router's incident ends (``status: ended`` records) are not for this
sink: it resolves on its own clock, so the config's ``ended`` key is refused here. Re-sends
and resolutions are best effort (a failed one is tried at the
next refresh); if netwatch itself stops, Alertmanager resolves its alerts at their
``endsAt``.

Threads: ``note`` runs on the capture thread, ``send`` and ``refresh`` on the sink's sender
thread: ``active`` is only touched under the sink's lock, and the network posts happen
outside it (on a snapshot).

Which alerts are active survives a restart: :meth:`state_changes` reports the entries added,
changed or gone (the deliverer stores them in the outbox database), :meth:`restore_state`
loads them at start, so alerts firing before a restart keep being re-sent after it.

Config read: ``sinks[].urls`` (every Alertmanager of an HA cluster; a post counts as
delivered when at least one accepts it; the attempt's deadline is shared among them),
``alerts.resend_s`` and ``alerts.resolve_s`` (through :meth:`AlertmanagerSink.use_alerts`),
and the HTTP client options of :mod:`netwatch.sinks.base` (basic auth or bearer token,
``ca_file``, client certificate, ``server_name``; one set for every URL). Known limits: at
most ``MAX_ACTIVE`` active alerts (the least recently seen is forgotten first).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from netwatch.alerts.grouping import members
from netwatch.alerts.model import rfc3339
from netwatch.config.schema import AlertsConfig, SinkConfig
from netwatch.sinks.base import Delivery, HttpSink, Record, SinkError, StateDelta

API_PATH = "/api/v2/alerts"
MAX_ACTIVE = 10_000
RESENDS_BEFORE_END = 4
LABEL_KEYS = ("device", "site", "group", "vendor", "platform")


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def labels_of(record: Mapping[str, Any]) -> dict[str, str]:
    """The Alertmanager label set of an alert record (its identity)."""
    # the incident's identity: what was reached (platform, name, AS, network), not an address
    peer = record.get("reached") or record.get("peer_name") or record.get("peer_ip") or ""
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


def am_alert(
    record: Mapping[str, Any],
    ends_after_s: float,
    generator_url: str = "",
    *,
    ends_at: float | None = None,
) -> Record:
    """One postable alert (API v2 ``postableAlert``) from an alert record; ``endsAt`` is
    ``ends_at`` when given, else ``ends_after_s`` after the alert time."""
    starts = datetime.fromisoformat(str(record["ts"]).replace("Z", "+00:00")).timestamp()
    alert: Record = {
        "labels": labels_of(record),
        "annotations": annotations_of(record),
        "startsAt": rfc3339(starts),
        "endsAt": rfc3339(starts + ends_after_s if ends_at is None else max(ends_at, starts)),
    }
    if generator_url:
        alert["generatorURL"] = generator_url
    return alert


def fingerprint(labels: Mapping[str, str]) -> str:
    """A stable hex digest of a label set (the identity Alertmanager de-duplicates on)."""
    return hashlib.sha256(_compact(dict(labels)).encode()).hexdigest()[:16]


@dataclass(slots=True)
class _Active:
    record: Record
    last_seen: float
    sent_at: float | None = None  # wall time of the last accepted post; None: not yet
    repost: bool = False  # not in the outbox: refresh posts it


def _restored(value: Mapping[str, Any]) -> _Active | None:
    """An entry as persisted by :meth:`AlertmanagerSink.state_changes`, or None if malformed."""
    try:
        sent = value.get("sent_at")
        return _Active(
            dict(value["record"]),
            float(value["last_seen"]),
            None if sent is None else float(sent),
            bool(value.get("repost")),
        )
    except (KeyError, TypeError, ValueError):
        return None


class AlertmanagerSink(HttpSink):
    """Posts alert batches to every configured Alertmanager and keeps them firing."""

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
        self.resend_s = 60.0
        self.resolve_s = 3600.0
        self.active: OrderedDict[str, _Active] = OrderedDict()
        self.resolved = 0
        self._lock = threading.Lock()  # guards active, _changed and _gone
        self._changed: set[str] = set()
        self._gone: set[str] = set()

    def use_alerts(self, alerts: AlertsConfig) -> None:
        """The ``alerts:`` settings: dashboard link and the life cycle below."""
        super().use_alerts(alerts)
        self.lifecycle(alerts.resend_s, alerts.resolve_s)

    def lifecycle(self, resend_s: float, resolve_s: float) -> None:
        """Set the re-send interval and how long an unseen alert stays firing."""
        self.resend_s = resend_s
        self.resolve_s = resolve_s

    def _touch(self, key: str) -> None:
        self._changed.add(key)
        self._gone.discard(key)

    def _forget(self, key: str) -> None:
        self._changed.discard(key)
        self._gone.add(key)

    def note(self, record: Record, now: float, *, queued: bool = True) -> None:
        for report in members(record):  # Alertmanager groups by its own routes
            self._note(report, now, queued)

    def _note(self, record: Record, now: float, queued: bool) -> None:
        key = fingerprint(labels_of(record))
        with self._lock:
            entry = self.active.get(key)
            if entry is None:
                if len(self.active) >= MAX_ACTIVE:
                    self._forget(self.active.popitem(last=False)[0])
                # a repeat of an identity already resolved (or forgotten) is not in the
                # outbox: refresh posts it again, firing from this sighting
                self.active[key] = _Active(dict(record), now, repost=not queued)
            else:
                entry.last_seen = now
                self.active.move_to_end(key)
            self._touch(key)

    def send(self, payloads: Sequence[Record]) -> Delivery:
        now = self._clock()
        ends = now + RESENDS_BEFORE_END * self.resend_s
        payloads = [report for record in payloads for report in members(record)]
        result = self._post([self._alert(r, ends) for r in payloads])
        if result.ok:
            with self._lock:
                for record in payloads:
                    key = fingerprint(labels_of(record))
                    entry = self.active.get(key)
                    if entry is None:  # queued before a restart: active from now on
                        if len(self.active) >= MAX_ACTIVE:
                            self._forget(self.active.popitem(last=False)[0])
                        entry = self.active[key] = _Active(dict(record), now)
                    entry.sent_at = now
                    entry.repost = False
                    self._touch(key)
        return result

    def refresh(self, now: float) -> int:
        """Re-send firing alerts every ``resend_s``; resolve those unseen for ``resolve_s``."""
        with self._lock:
            due = [
                (k, e, now - e.last_seen >= self.resolve_s)
                for k, e in self.active.items()
                if e.repost
                or (
                    e.sent_at is not None
                    and (now - e.last_seen >= self.resolve_s or now - e.sent_at >= self.resend_s)
                )
            ]
            ends = now + RESENDS_BEFORE_END * self.resend_s
            body = [self._alert(e.record, now if gone else ends) for _, e, gone in due]
        if not due or not self._post(body).ok:
            return 0
        with self._lock:
            for key, entry, gone in due:
                if self.active.get(key) is not entry:
                    continue  # forgotten meanwhile
                if gone and now - entry.last_seen >= self.resolve_s:
                    del self.active[key]
                    self._forget(key)
                    self.resolved += 1
                else:
                    entry.sent_at = now
                    entry.repost = False
                    self._touch(key)
        return len(due)

    def state_changes(self, full: bool = False) -> StateDelta | None:
        """Active entries added or changed since the last call, and those gone."""
        with self._lock:
            if not full and not self._changed and not self._gone:
                return None
            keys = set(self.active) if full else self._changed
            upserts = {k: asdict(self.active[k]) for k in keys if k in self.active}
            delta = StateDelta(upserts, frozenset() if full else frozenset(self._gone), full)
            self._changed.clear()
            self._gone.clear()
        return delta

    def restore_state(self, entries: Mapping[str, Record]) -> None:
        """Load the active alerts of an earlier run (kept ones win over stored ones)."""
        with self._lock:
            for key, value in entries.items():
                entry = _restored(value)
                if entry is None or key in self.active:
                    continue
                if len(self.active) >= MAX_ACTIVE:
                    break
                self.active[key] = entry
                self.active.move_to_end(key, last=False)

    def _alert(self, record: Mapping[str, Any], ends_at: float) -> Record:
        return am_alert(record, self.ends_after_s, self.generator_url, ends_at=ends_at)

    def _post(self, body: list[Record]) -> Delivery:
        data = json.dumps(body, separators=(",", ":")).encode()
        deadline = time.monotonic() + self.attempt_budget(self.timeout_s)
        results: list[Delivery] = []
        for i, url in enumerate(self.urls):
            share = (deadline - time.monotonic()) / (len(self.urls) - i)
            results.append(self.post_json(url, data, timeout_s=share))
        if any(r.ok for r in results):
            return Delivery.success()
        afters = [r.retry_after for r in results if r.retry_after is not None]
        errors = "; ".join(f"urls[{i}]: {r.error}" for i, r in enumerate(results))
        permanent = all(r.permanent for r in results)
        return Delivery.failure(errors, max(afters) if afters else None, permanent=permanent)
