from __future__ import annotations

import logging
from pathlib import Path

import pytest

from netwatch.config.schema import SinkConfig
from netwatch.delivery import Deliverer
from netwatch.outbox import Outbox
from netwatch.sinks import BUILTIN_SINKS, SinkError, build_sinks
from netwatch.sinks.base import HttpResult, Sink, http_post, parse_retry_after
from netwatch.sinks.pagerduty import PagerdutySink
from netwatch.sinks.webhook import WebhookSink
from tests.sinks.conftest import make_alert
from tests.sinks.httpstub import Stub, serve

SECRET_URL_PATH = "/hooks/T000/B000/s3cr3t-token"


def test_registry_is_the_builtin_set() -> None:
    assert Sink.registry == {cls.name_: cls for cls in BUILTIN_SINKS}
    assert set(Sink.registry) == {
        "jsonl",
        "alertmanager",
        "webhook",
        "slack",
        "pagerduty",
        "syslog",
        "teams",
        "smtp",
    }


def test_duplicate_sink_name_fails_loudly() -> None:
    with pytest.raises(TypeError, match="defined twice"):

        class JsonlSink(Sink):  # same name as the built-in
            pass


def test_accepts_applies_rules_severity_and_groups() -> None:
    cfg = SinkConfig(
        name="s",
        type="jsonl",
        path=Path("x"),
        rules=("cloud_registration",),
        min_severity="high",
        groups=("lobby",),
    )
    (sink,) = build_sinks([cfg])
    rec = make_alert().record()
    assert sink.accepts(rec, "lobby")
    assert not sink.accepts(rec)  # default group not listed
    assert not sink.accepts(rec, "other")
    assert not sink.accepts(make_alert(rule="rogue_dns").record(), "lobby")
    medium = make_alert(severity="medium").record()
    assert not sink.accepts(medium, "lobby")
    critical = make_alert(severity="critical").record()
    assert sink.accepts(critical, "lobby")


def test_no_filters_accept_everything() -> None:
    (sink,) = build_sinks([SinkConfig(name="s", type="jsonl", path=Path("x"))])
    assert sink.accepts(make_alert(severity="info").record())


def test_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after("30", 0.0) == 30.0
    now = 1_767_225_600.0  # Thu, 01 Jan 2026 00:00:00 GMT
    assert parse_retry_after("Thu, 01 Jan 2026 00:02:00 GMT", now) == 120.0
    assert parse_retry_after("Thu, 01 Jan 2026 00:00:00 GMT", now + 5) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


def test_missing_secret_fails_without_value(tmp_path: Path) -> None:
    cfg = SinkConfig(name="hook", type="webhook", url_env="NW_HOOK")
    with pytest.raises(SinkError, match="NW_HOOK is empty or unset"):
        build_sinks([cfg], environ={})
    missing = SinkConfig(name="hook", type="webhook", url_file=tmp_path / "nope")
    with pytest.raises(SinkError, match="cannot read url_file"):
        build_sinks([missing])


def test_a_sink_missing_its_address_is_refused() -> None:
    cfg = SinkConfig(name="sys", type="syslog")
    with pytest.raises(SinkError, match="address is required"):
        build_sinks([cfg])


def _leaky_sinks(stub: Stub, tmp_path: Path) -> list[Sink]:
    url_file = tmp_path / "url"
    url_file.write_text(stub.url + SECRET_URL_PATH + "\n")
    hook = WebhookSink(SinkConfig(name="hook", type="webhook", url_file=url_file))
    key = "R0UTINGKEY0123456789abcdef012345"
    pd_cfg = SinkConfig(name="pd", type="pagerduty", routing_key_env="NW_PD")
    pd = PagerdutySink(pd_cfg, environ={"NW_PD": key}, url=stub.url + "/v2/enqueue")
    return [hook, pd]


def test_secrets_never_in_repr_errors_or_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secrets = ("s3cr3t-token", "R0UTINGKEY0123456789abcdef012345")
    with serve(default=500) as stub:
        sinks = _leaky_sinks(stub, tmp_path)
        deliverer = Deliverer(Outbox(":memory:"), sinks, clock=lambda: 0.0)
        deliverer.enqueue(make_alert())
        with caplog.at_level(logging.DEBUG):
            assert deliverer.pump(0.0) == 0
        assert len(stub.requests) == 2
    texts = [repr(s) + str(s) + repr(vars(s)) for s in sinks]
    texts += [r.getMessage() for r in caplog.records]
    assert len(caplog.records) == 2
    for text in texts:
        for secret in secrets:
            assert secret not in text


def test_exception_text_is_scrubbed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    url_file = tmp_path / "url"
    url_file.write_text("bogus://host" + SECRET_URL_PATH)

    def boom(url: str, body: bytes, headers: object, timeout: float) -> HttpResult:
        raise RuntimeError(f"cannot reach {url}")

    sink = WebhookSink(SinkConfig(name="h", type="webhook", url_file=url_file), http=boom)
    deliverer = Deliverer(Outbox(":memory:"), [sink])
    deliverer.enqueue(make_alert())
    with caplog.at_level(logging.WARNING):
        assert deliverer.pump(0.0) == 0
    assert deliverer.stats["h"].failed == 1
    (record,) = caplog.records
    assert record.getMessage().endswith("RuntimeError: cannot reach ***")
    # an unknown scheme never names the URL in the error
    result = http_post("bogus://host" + SECRET_URL_PATH, b"{}", {}, 1.0)
    assert result.status == 0 and "s3cr3t" not in result.error


def test_unreachable_server_is_retryable() -> None:
    with serve() as stub:
        url = stub.url
    result = http_post(url + "/x", b"{}", {}, 2.0)  # server is gone: connection refused
    assert result.status == 0 and result.error.startswith("connection failed")
