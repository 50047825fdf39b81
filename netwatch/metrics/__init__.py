"""Prometheus metrics: a scrape-time collector over the pipeline's counters, and its server."""

from netwatch.metrics.cameras import CameraTraffic, camera_resolver
from netwatch.metrics.collector import AlertCounter, NetwatchCollector
from netwatch.metrics.server import MetricsServer, WebConfig, WebConfigError, load_web_config

__all__ = [
    "AlertCounter",
    "CameraTraffic",
    "MetricsServer",
    "NetwatchCollector",
    "WebConfig",
    "WebConfigError",
    "camera_resolver",
    "load_web_config",
]
