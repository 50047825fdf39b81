"""netwatch configuration: load and validate the YAML config, or use the built-in defaults.

`Config.load(path)` validates the whole file and raises `ConfigError`, whose `str()` is one
line `FILE:LINE: KEY.PATH: message`; `Config.default()` is the zero-config set-up;
`check_config_main(path)` backs `netwatch check-config FILE`. The schema (every key, type and
default) lives in `schema.py`; `config/netwatch.yaml` documents each key.
Known limits: one error per run; YAML merge keys (`<<`) are not supported.
"""

from __future__ import annotations

import sys

from netwatch.config.errors import ConfigError
from netwatch.config.schema import (
    DEFAULT_GROUP,
    DEFAULT_LOCAL_NETS,
    SEVERITIES,
    SINK_TYPES,
    AlertsConfig,
    CameraConfig,
    CaptureConfig,
    Config,
    DeepConfig,
    DnsConfig,
    FlowsConfig,
    GeoipConfig,
    GroupPolicy,
    LearningConfig,
    LoggingConfig,
    MetricsConfig,
    SinkConfig,
    SiteConfig,
)
from netwatch.config.values import HostPort, IPAddress, IPNetwork, PortRule

__all__ = [
    "DEFAULT_GROUP",
    "DEFAULT_LOCAL_NETS",
    "SEVERITIES",
    "SINK_TYPES",
    "AlertsConfig",
    "CameraConfig",
    "CaptureConfig",
    "Config",
    "ConfigError",
    "DeepConfig",
    "DnsConfig",
    "FlowsConfig",
    "GeoipConfig",
    "GroupPolicy",
    "HostPort",
    "IPAddress",
    "IPNetwork",
    "LearningConfig",
    "LoggingConfig",
    "MetricsConfig",
    "PortRule",
    "SinkConfig",
    "SiteConfig",
    "check_config_main",
]


def check_config_main(path: str) -> int:
    """`netwatch check-config FILE`: print `OK: FILE` and return 0, or the error and return 2."""
    try:
        Config.load(path)
    except ConfigError as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    sys.stdout.write(f"OK: {path}\n")
    return 0
