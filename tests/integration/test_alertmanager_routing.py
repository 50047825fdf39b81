"""The example route tree (prometheus/alertmanager.yml) routes netwatch's alerts by the
camera's group and the sensor's site, in a real Alertmanager.

The example config is loaded as shipped, with two changes for a test: every receiver's
webhook goes to a recording HTTP server on loopback (same paths), and the group timers are
one second. netwatch's Alertmanager sink posts alert records (the labels it builds from
``group``, ``site``, ``vendor`` and ``platform``); each must reach the receiver the route
tree names for it: wards to the security team, the car park to facilities, a parliament
sensor to its security desk, everything else by severity.

Skipped when ``prometheus-alertmanager`` is not installed (CI installs it).
"""

from __future__ import annotations

import shutil
import time
import urllib.error
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from netwatch.alerts.model import Alert, Severity
from netwatch.config.schema import SinkConfig
from netwatch.sinks.alertmanager import AlertmanagerSink, labels_of
from tests.integration.stack import LOOPBACK, Proc, free_port, get_json, poll
from tests.sinks.httpstub import Stub, serve

ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
if ALERTMANAGER is None:
    pytest.skip("needs prometheus-alertmanager (Debian package)", allow_module_level=True)

EXAMPLE = Path(__file__).resolve().parents[2] / "prometheus" / "alertmanager.yml"
TIMERS = ("group_wait", "group_interval")


def _for_test(node: Any, stub_url: str) -> Any:
    """The example config with fast group timers and every webhook on the stub."""
    if isinstance(node, dict):
        out = {k: _for_test(v, stub_url) for k, v in node.items()}
        for timer in TIMERS:
            if timer in out:
                out[timer] = "1s"
        if "url" in out and isinstance(out["url"], str):
            out["url"] = stub_url + urlsplit(out["url"]).path
        return out
    if isinstance(node, list):
        return [_for_test(v, stub_url) for v in node]
    return node


@pytest.fixture(scope="module")
def routed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Stub]]:
    tmp = tmp_path_factory.mktemp("am-routes")
    with serve() as stub:
        cfg = _for_test(yaml.safe_load(EXAMPLE.read_text(encoding="utf-8")), stub.url)
        cfg["route"]["group_wait"] = cfg["route"]["group_interval"] = "1s"
        path = tmp / "alertmanager.yml"
        path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
        port = free_port()
        assert ALERTMANAGER is not None
        proc = Proc(
            "alertmanager",
            [
                ALERTMANAGER,
                f"--config.file={path}",
                f"--storage.path={tmp / 'data'}",
                f"--web.listen-address={LOOPBACK}:{port}",
                "--cluster.listen-address=",
            ],
            tmp / "alertmanager.log",
            cwd=tmp,
        )
        url = f"http://{LOOPBACK}:{port}"

        def ready() -> bool | None:
            try:
                return True if get_json(url + "/api/v2/status") else None
            except (OSError, urllib.error.URLError):
                return None

        try:
            assert poll(ready, 30.0), proc.tail()
            yield url, stub
        finally:
            proc.stop()


def alert(device: str, rule: str, severity: Severity, **kw: Any) -> Alert:
    values: dict[str, Any] = {
        "ts": time.time(),
        "rule": rule,
        "severity": severity,
        "device": device,
        "device_ip": "10.9.0.1",
        "vendor": "Hikvision",
        "peer_ip": "203.0.113.5",
        "summary": f"{device}: {rule}",
        "site": "hospital-north",
        "group": "default",
    }
    values.update(kw)
    return Alert(**values)


CASES = [
    (alert("ward-3-cam", "outbound_stream", Severity.CRITICAL, group="wards"), "security-team"),
    (
        alert(
            "icu-cam", "cloud_registration", Severity.HIGH, group="icu", platform="Hikvision cloud"
        ),
        "security-team",
    ),
    (alert("barrier-cam", "audio_stream", Severity.HIGH, group="car-park"), "facilities"),
    (
        alert(
            "hall-cam",
            "nat_traversal",
            Severity.HIGH,
            site="parliament-east",
            platform="CS2 Network PPPP",
        ),
        "parliament-security",
    ),
    (alert("lobby-cam", "unexpected_egress", Severity.HIGH), "netwatch-camera-urgent"),
    (alert("shed-cam", "new_destination", Severity.MEDIUM), "netwatch-camera"),
]


def test_netwatch_alerts_reach_the_receiver_their_group_and_site_route_to(
    routed: tuple[str, Stub],
) -> None:
    url, stub = routed
    sink = AlertmanagerSink(SinkConfig(name="am", type="alertmanager", urls=(url,)), timeout_s=5)
    result = sink.send([a.record() for a, _ in CASES])
    assert result.ok, result

    def delivered() -> dict[str, str] | None:
        got: dict[str, str] = {}
        for req in list(stub.requests):
            for a in req.json().get("alerts", ()):
                got[a["labels"]["device"]] = req.path.rsplit("/", 1)[-1]
        return got if len(got) == len(CASES) else None

    got = poll(delivered, 30.0, interval=0.2)
    assert got == {a.device: receiver for a, receiver in CASES}, got
    # the routing labels are the alert's: group, site, vendor, platform
    listed = {a["labels"]["device"]: a["labels"] for a in get_json(url + "/api/v2/alerts")}
    icu = listed["icu-cam"]
    assert (icu["group"], icu["site"], icu["vendor"], icu["platform"]) == (
        "icu", "hospital-north", "Hikvision", "Hikvision cloud",
    )  # fmt: skip
    assert icu == labels_of(CASES[1][0].record())
