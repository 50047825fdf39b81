"""The metrics netwatch exports, by the name PromQL queries them (counters with ``_total``).

This is the single list the deployment checks compare dashboards and alerting rules against:
``METRIC_LABELS`` maps every metric to its own label names (``job`` and ``instance`` are added
by Prometheus at scrape time, see ``TARGET_LABELS``).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from netwatch.signatures.loader import RULE_IDS

_CAMERA = frozenset({"camera", "group"})

METRIC_LABELS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        # Counters.
        "netwatch_packets_total": frozenset(),
        "netwatch_wire_bytes_total": frozenset(),
        "netwatch_decode_failures_total": frozenset({"reason"}),
        "netwatch_non_ip_frames_total": frozenset({"kind"}),
        "netwatch_flows_ended_total": frozenset({"reason"}),
        "netwatch_deep_parsed_total": frozenset({"parser"}),
        "netwatch_alerts_total": frozenset({"rule", "severity"}),
        "netwatch_alerts_suppressed_total": frozenset(),
        "netwatch_rule_errors_total": frozenset({"rule"}),
        "netwatch_geoip_lookups_total": frozenset(),
        "netwatch_geoip_cache_hits_total": frozenset(),
        "netwatch_geoip_cache_misses_total": frozenset(),
        "netwatch_camera_sent_bytes_total": _CAMERA,
        "netwatch_camera_received_bytes_total": _CAMERA,
        "netwatch_camera_sent_packets_total": _CAMERA,
        "netwatch_camera_received_packets_total": _CAMERA,
        "netwatch_camera_peer_country_flows_total": frozenset({"camera", "country"}),
        "netwatch_camera_peer_country_sent_bytes_total": frozenset({"camera", "country"}),
        "netwatch_camera_peer_asn_flows_total": frozenset({"camera", "asn", "org"}),
        "netwatch_camera_alerts_total": frozenset({"camera", "rule"}),
        "netwatch_label_overflow_total": frozenset({"metric"}),
        "netwatch_capture_received_packets_total": frozenset({"interface"}),
        "netwatch_capture_dropped_packets_total": frozenset({"interface", "stage"}),
        "netwatch_capture_errors_total": frozenset({"interface"}),
        "netwatch_capture_up": frozenset({"interface"}),
        "netwatch_sink_alerts_enqueued_total": frozenset({"sink"}),
        "netwatch_sink_alerts_delivered_total": frozenset({"sink"}),
        "netwatch_sink_alerts_failed_total": frozenset({"sink"}),
        "netwatch_sink_alerts_dropped_total": frozenset({"sink"}),
        "netwatch_config_reloads_total": frozenset({"result"}),
        "netwatch_outbox_storage_errors_total": frozenset(),
        "netwatch_outbox_dropped_total": frozenset({"reason"}),
        "process_cpu_seconds_total": frozenset(),
        # Gauges.
        "netwatch_flows_active": frozenset(),
        "netwatch_cameras": frozenset({"group"}),
        "netwatch_geoip_database_build_timestamp_seconds": frozenset({"database"}),
        "netwatch_pipeline_lag_seconds": frozenset(),
        "netwatch_pipeline_last_packet_timestamp_seconds": frozenset(),
        "netwatch_outbox_depth": frozenset({"sink"}),
        "netwatch_outbox_oldest_age_seconds": frozenset({"sink"}),
        "netwatch_outbox_storage_ok": frozenset(),
        "netwatch_outbox_in_memory": frozenset(),
        "netwatch_outbox_rows": frozenset(),
        "netwatch_outbox_bytes": frozenset(),
        "netwatch_outbox_intake_depth": frozenset(),
        "netwatch_sink_last_success_timestamp_seconds": frozenset({"sink"}),
        "netwatch_config_last_reload_successful": frozenset(),
        "netwatch_config_last_reload_success_timestamp_seconds": frozenset(),
        "netwatch_build_info": frozenset({"version"}),
        "netwatch_scrape_duration_seconds": frozenset(),
        "process_resident_memory_bytes": frozenset(),
        "process_start_time_seconds": frozenset(),
    }
)

METRIC_NAMES: frozenset[str] = frozenset(METRIC_LABELS)
"""Every exported metric name as written in PromQL (counters end in ``_total``)."""

COUNTER_NAMES: frozenset[str] = frozenset(n for n in METRIC_NAMES if n.endswith("_total"))

FAMILY_NAMES: frozenset[str] = frozenset(
    n.removesuffix("_total") if n in COUNTER_NAMES else n for n in METRIC_NAMES
)
"""The same list as metric family names (``# TYPE`` lines: counters without ``_total``)."""

TARGET_LABELS: frozenset[str] = frozenset({"job", "instance"})
"""Labels Prometheus attaches to every scraped series."""

PROMETHEUS_SERIES: Mapping[str, frozenset[str]] = MappingProxyType({"up": frozenset()})
"""Series Prometheus synthesises per target; rules may use them besides ``METRIC_NAMES``."""

CAMERA_RULE_IDS: frozenset[str] = frozenset(RULE_IDS)
"""The ``rule`` values of ``netwatch_alerts_total``; also the pushed alerts' ``alertname``."""
