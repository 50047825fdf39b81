"""The alerts/sinks keys of incidents ending and chat messages: alerts.dashboard_url (a URL
template over the record's fields, checked at load) and sinks[].ended."""

from __future__ import annotations

import pytest

from netwatch.config import Config
from netwatch.config.schema import DASHBOARD_FIELDS
from tests.config.conftest import ConfigFailure, LoadConfig

GRAFANA = "https://grafana.example/d/netwatch-camera/camera"


def test_dashboard_url_defaults_to_none_and_takes_every_field(load_config: LoadConfig) -> None:
    assert Config.default().alerts.dashboard_url is None
    template = GRAFANA + "?" + "&".join(f"{f}={{{f}}}" for f in DASHBOARD_FIELDS)
    cfg = load_config(f'alerts:\n  dashboard_url: "{template}"\n')
    assert cfg.alerts.dashboard_url == template


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (GRAFANA + "?var-camera={camera}", "unknown field {camera}"),
        (GRAFANA + "?var-camera={device.__class__}", "unknown field"),
        (GRAFANA + "?var-camera={device", "not a valid template"),
        ("ftp://grafana.example/{device}", "not an http:// or https:// URL template"),
        ("", "must not be empty"),
    ],
)
def test_dashboard_url_errors_name_file_line_and_key(
    config_error: ConfigFailure, value: str, fragment: str
) -> None:
    err = config_error(f'alerts:\n  suppress_s: 60\n  dashboard_url: "{value}"\n')
    assert (err.line, err.key) == (3, "alerts.dashboard_url"), str(err)
    assert fragment in err.message
    assert str(err).startswith(f"{err.file}:3: alerts.dashboard_url: ")


def test_ended_is_a_sink_key_null_by_default(load_config: LoadConfig) -> None:
    cfg = load_config(
        "sinks:\n"
        "  - {name: chat, type: slack, url_env: U}\n"
        "  - {name: log, type: jsonl, path: a.jsonl, ended: true}\n"
        "  - {name: pd, type: pagerduty, routing_key_env: K, ended: false}\n"
    )
    assert [s.ended for s in cfg.sinks] == [None, True, False]


def test_ended_is_refused_for_alertmanager_and_must_be_a_boolean(
    config_error: ConfigFailure,
) -> None:
    err = config_error(
        "sinks:\n  - name: am\n    type: alertmanager\n    urls: ['http://a:9093']\n"
        "    ended: true\n"
    )
    assert (err.line, err.key) == (5, "sinks[0].ended")
    assert "resolves its alerts itself" in err.message
    err = config_error("sinks:\n  - {name: c, type: slack, url_env: U, ended: sometimes}\n")
    assert (err.line, err.key) == (2, "sinks[0].ended") and "true or false" in err.message
