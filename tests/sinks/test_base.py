from __future__ import annotations

import base64
import logging
import ssl
from pathlib import Path
from typing import Any

import pytest

from netwatch.config.schema import SinkConfig
from netwatch.config.values import HostPort
from netwatch.delivery import Deliverer
from netwatch.outbox import Outbox
from netwatch.sinks import BUILTIN_SINKS, SinkError, build_sinks
from netwatch.sinks.alertmanager import AlertmanagerSink
from netwatch.sinks.base import HttpResult, Sink, http_post, parse_retry_after
from netwatch.sinks.pagerduty import PagerdutySink
from netwatch.sinks.webhook import WebhookSink
from tests.sinks.conftest import make_alert, make_end
from tests.sinks.httpstub import Stub, serve
from tests.sinks.tlsca import CA, Pair

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


# ---------------------------------------------------------------- HTTP client options

PASSWORD = "pa55-w0rd-never-shown"
TOKEN = "t0ken-never-shown"


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CA:
    return CA(tmp_path_factory.mktemp("http-ca"))


def server_tls(ca: CA, pair: Pair, *, client_ca: bool = False) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pair.cert, pair.key)
    if client_ca:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(ca.cert)
    return context


def hook(url: str, **kw: Any) -> WebhookSink:
    config = SinkConfig(name="hook", type="webhook", url_env="HOOK_URL", **kw)
    env = {"HOOK_URL": url, "HOOK_PW": PASSWORD, "HOOK_TOKEN": TOKEN}
    return WebhookSink(config, environ=env, timeout_s=5.0)


def test_basic_auth_header_and_a_refusal_without_the_secret(stub: Stub) -> None:
    sink = hook(stub.url + "/in", username="netwatch", password_env="HOOK_PW")
    assert sink.send([make_alert().record()]).ok
    expected = base64.b64encode(f"netwatch:{PASSWORD}".encode()).decode()
    assert stub.requests[0].headers["Authorization"] == f"Basic {expected}"
    stub.script.append((401, {"WWW-Authenticate": 'Basic realm="x"'}))
    result = sink.send([make_alert().record()])
    assert (result.ok, result.permanent, result.error) == (False, True, "HTTP 401")
    assert PASSWORD not in repr(sink) and expected not in repr(vars(sink))


def test_bearer_token_from_a_file(stub: Stub, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    config = SinkConfig(name="am", type="alertmanager", urls=(stub.url,), token_file=token_file)
    sink = AlertmanagerSink(config, timeout_s=5.0)
    assert sink.send([make_alert().record()]).ok
    assert stub.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in repr(sink)
    assert sink.scrub(f"echo: Bearer {TOKEN}") == "echo: Bearer ***"


def test_private_ca_and_server_name(ca: CA) -> None:
    pair = ca.issue("named", dns=("am.test",))  # no IP address in the certificate
    with serve(tls=server_tls(ca, pair)) as tls_stub:
        # the system's CAs do not know the private CA: retryable, and says what to set
        result = hook(tls_stub.url).send([make_alert().record()])
        assert not result.ok and not result.permanent
        assert result.error.startswith("TLS: the server's certificate is not trusted (")
        assert result.error.endswith("; ca_file sets the CA)")
        # the CA is known, but the certificate is for am.test, not 127.0.0.1
        result = hook(tls_stub.url, ca_file=ca.cert).send([make_alert().record()])
        assert not result.ok and not result.permanent
        assert "not valid for the host name checked (server_name sets" in result.error
        assert "127.0.0.1" not in result.error and "am.test" not in result.error
        assert not tls_stub.requests
        sink = hook(tls_stub.url + "/x", ca_file=ca.cert, server_name="am.test")
        assert sink.send([make_alert().record()]).ok
        assert [r.path for r in tls_stub.requests] == ["/x"]


def test_client_certificate(ca: CA) -> None:
    server = ca.issue("mtls-server", ips=("127.0.0.1",))
    client = ca.issue("mtls-client", client=True)
    with serve(tls=server_tls(ca, server, client_ca=True)) as tls_stub:
        result = hook(tls_stub.url, ca_file=ca.cert).send([make_alert().record()])
        assert not result.ok and not result.permanent  # no client certificate
        assert result.error.startswith(("TLS handshake failed (", "connection failed: "))
        sink = hook(tls_stub.url, ca_file=ca.cert, cert_file=client.cert, key_file=client.key)
        assert sink.send([make_alert().record()]).ok
        assert len(tls_stub.requests) == 1


def test_unloadable_tls_files_fail_at_build(ca: CA, tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.pem"
    bogus.write_text("-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")
    with pytest.raises(SinkError, match=r"^sink hook: cannot load ca_file .*bogus\.pem: "):
        hook("https://127.0.0.1:1", ca_file=bogus)
    with pytest.raises(SinkError, match=r"^sink hook: cannot load cert_file .*bogus\.pem with"):
        hook("https://127.0.0.1:1", cert_file=bogus, key_file=bogus)
    with pytest.raises(SinkError, match=r"^sink hook: password_env NOPE is empty or unset$"):
        hook("https://127.0.0.1:1", username="u", password_env="NOPE")


SMTP_KEYS = {"smarthost": HostPort("m", 25), "mail_from": "a@b.c", "mail_to": ("d@e.f",)}


SMTP_KEYS = {"smarthost": HostPort("m", 25), "mail_from": "a@b.c", "mail_to": ("d@e.f",)}


@pytest.mark.parametrize(
    ("kind", "keys", "default"),
    [
        ("webhook", {"url_env": "U"}, True),
        ("slack", {"url_env": "U"}, True),
        ("teams", {"url_env": "U"}, True),
        ("pagerduty", {"routing_key_env": "U"}, True),
        ("smtp", SMTP_KEYS, True),
        ("jsonl", {"path": Path("alerts.jsonl")}, False),
        ("syslog", {"address": HostPort("127.0.0.1", 514), "transport": "udp"}, False),
        ("alertmanager", {"urls": ("http://a:9093",)}, False),
    ],
)
def test_which_sinks_take_incident_ends(kind: str, keys: dict[str, Any], default: bool) -> None:
    end = make_end().record()
    (sink,) = build_sinks([SinkConfig(name="s", type=kind, **keys)], environ={"U": "http://x/"})
    assert sink.accepts(end) is default
    assert sink.accepts(make_alert().record())  # firing alerts as before
    if kind != "alertmanager":  # the config refuses ended there
        (other,) = build_sinks(
            [SinkConfig(name="s", type=kind, ended=not default, **keys)], environ={"U": "http://x/"}
        )
        assert other.accepts(end) is not default
    # the other filters still apply to ends
    (strict,) = build_sinks(
        [SinkConfig(name="s", type=kind, rules=("rogue_dns",), ended=True, **keys)]
        if kind != "alertmanager"
        else [SinkConfig(name="s", type=kind, rules=("rogue_dns",), **keys)],
        environ={"U": "http://x/"},
    )
    assert not strict.accepts(end)
