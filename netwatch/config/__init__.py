"""netwatch configuration: load and validate the YAML config, or use the built-in defaults.

`Config.load(path)` validates the whole file and raises `ConfigError`, whose `str()` is one
line `FILE:LINE: KEY.PATH: message`; `Config.default()` is the zero-config set-up;
`check_config_main(path)` backs `netwatch check-config FILE`: the file, then every check
`netwatch run` makes before opening sockets (`netwatch.preflight`, imported only then), so a
config that `run` refuses is refused here with the same line. The schema (every key, type
and default) lives in `schema.py`; `config/netwatch.yaml` documents each key.
Known limits: one error per run; YAML merge keys (`<<`) are not supported.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

from netwatch.config.errors import ConfigError, ConfigWarning
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
    "ConfigWarning",
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


def check_config_main(
    path: str, *, schema_only: bool = False, environ: Mapping[str, str] | None = None
) -> int:
    """`netwatch check-config FILE`: print `OK: FILE` and return 0, or the one line `netwatch
    run` would fail with and return 2. Warnings go to stderr as `netwatch: WARNING: ...`.

    `schema_only` checks the file alone (any machine, no secrets, interfaces or files
    needed); otherwise `netwatch.preflight.preflight` runs with `environ` (default: the
    process environment)."""
    from netwatch.preflight import FAILURES, failure_line, preflight  # noqa: PLC0415

    try:
        cfg = Config.load(path)
        if schema_only:
            warnings = [str(w) for w in cfg.warnings]
        else:
            plan = preflight(cfg, environ=environ)
            plan.close()
            warnings = list(plan.warnings)
    except FAILURES as exc:
        sys.stderr.write(f"netwatch: {failure_line(exc)}\n")
        return 2
    for line in warnings:
        sys.stderr.write(f"netwatch: WARNING: {line}\n")
    sys.stdout.write(f"OK: {path}\n")
    return 0
