"""The e-mail sink against a real SMTP server on loopback (tests/sinks/smtpserver.py), with
a private CA made at test time: STARTTLS and implicit TLS, AUTH, refusals, header
injection, the total deadline and shutdown."""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from netwatch.config.schema import SinkConfig
from netwatch.config.values import HostPort
from netwatch.sinks.base import SinkError
from netwatch.sinks.smtp import SmtpSink, body_of, one_line, subject_of
from tests.sinks.conftest import make_alert, make_end
from tests.sinks.smtpserver import SmtpServer, serve
from tests.sinks.tlsca import CA, Pair

PASSWORD = "c0rrect-h0rse-battery"
ENV = {"SMTP_PW": PASSWORD}


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CA:
    return CA(tmp_path_factory.mktemp("smtp-ca"))


@pytest.fixture(scope="module")
def server_pair(ca: CA) -> Pair:
    return ca.issue("smtp-server", dns=("localhost",), ips=("127.0.0.1",))


def server_tls(pair: Pair) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pair.cert, pair.key)
    return context


@pytest.fixture
def smtp(server_pair: Pair) -> Iterator[SmtpServer]:
    with serve(tls=server_tls(server_pair), users={"netwatch": PASSWORD}) as s:
        yield s


def make_sink(port: int, ca: CA | None, **kw: Any) -> SmtpSink:
    values: dict[str, Any] = {
        "name": "mail",
        "type": "smtp",
        "smarthost": HostPort("127.0.0.1", port),
        "mail_from": "netwatch@hospital.example",
        "mail_to": ("security@hospital.example", "noc@hospital.example"),
        "username": "netwatch",
        "password_env": "SMTP_PW",
        "ca_file": None if ca is None else ca.cert,
    }
    values.update(kw)
    timeout_s = values.pop("timeout_s", 5.0)
    return SmtpSink(SinkConfig(**values), environ=ENV, timeout_s=timeout_s, hostname="sensor")


def test_starttls_auth_and_one_message_per_batch(smtp: SmtpServer, ca: CA) -> None:
    sink = make_sink(smtp.port, ca)
    records = [make_alert().record(3), make_alert(rule="rogue_dns", device="ward-2").record()]
    result = sink.send(records)
    assert result.ok, result
    (mail,) = smtp.mails
    assert (mail.tls, mail.user) == (True, "netwatch")
    assert mail.mail_from == "netwatch@hospital.example"
    assert mail.rcpt_to == ["security@hospital.example", "noc@hospital.example"]
    assert smtp.commands.index("STARTTLS") < smtp.commands.index("AUTH")
    msg = mail.parsed()
    assert msg["Subject"] == "[netwatch] high cloud_registration lobby-1 (+1 more)"
    assert msg["From"] == "netwatch@hospital.example"
    assert msg["To"] == "security@hospital.example, noc@hospital.example"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["Message-ID"].endswith("@hospital.example>")
    body = msg.get_content()
    assert "netwatch raised 2 alerts." in body
    assert "lobby-1 registered with <Hik-Connect> & co" in body
    assert "Traffic: lobby-1 -> dev.hik-connect.com (47.1.2.3:443)" in body
    assert "Country / AS: CN" in body
    assert "Seen: 3 times" in body
    assert "Rule: rogue_dns" in body and "Camera: ward-2 (10.20.0.11)" in body
    assert '"endpoint": "hik-connect"' in body


def test_implicit_tls(server_pair: Pair, ca: CA) -> None:
    with serve(tls=server_tls(server_pair), implicit=True, users={"netwatch": PASSWORD}) as s:
        assert make_sink(s.port, ca, tls="implicit").send([make_alert().record()]).ok
        (mail,) = s.mails
        assert (mail.tls, mail.user) == (True, "netwatch")
        assert "STARTTLS" not in s.commands


def test_wrong_password_is_permanent_and_names_no_secret(smtp: SmtpServer, ca: CA) -> None:
    sink = SmtpSink(
        SinkConfig(
            name="mail",
            type="smtp",
            smarthost=HostPort("127.0.0.1", smtp.port),
            mail_from="netwatch@hospital.example",
            mail_to=("security@hospital.example",),
            username="netwatch",
            password_env="SMTP_PW",
            ca_file=ca.cert,
        ),
        environ={"SMTP_PW": "wr0ng-secret-value"},
        timeout_s=5.0,
    )
    result = sink.send([make_alert().record()])
    assert not result.ok and result.permanent
    assert "SMTP AUTH: authentication failed (SMTP 535" in result.error
    assert "wr0ng-secret-value" not in result.error and "wr0ng-secret-value" not in repr(sink)
    assert not smtp.mails and "MAIL" not in smtp.commands


def test_a_server_without_starttls_gets_no_password(ca: CA) -> None:
    with serve(users={"netwatch": PASSWORD}) as plain:  # offers AUTH but no STARTTLS
        result = make_sink(plain.port, ca).send([make_alert().record()])
        assert not result.ok and not result.permanent
        assert result.error == "SMTP STARTTLS: the server does not offer STARTTLS"
        assert "AUTH" not in plain.commands and not plain.mails


def test_a_certificate_from_another_ca_is_refused(
    smtp: SmtpServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    other = CA(tmp_path_factory.mktemp("other-ca"), name="someone else")
    result = make_sink(smtp.port, other).send([make_alert().record()])
    assert not result.ok and not result.permanent
    assert result.error.startswith("SMTP STARTTLS: TLS: the server's certificate is not trusted")
    assert "ca_file" in result.error
    assert "AUTH" not in smtp.commands


@pytest.mark.parametrize(("code", "permanent"), [(550, True), (450, False)])
def test_refused_recipients(server_pair: Pair, ca: CA, code: int, permanent: bool) -> None:
    with serve(tls=server_tls(server_pair), users={"netwatch": PASSWORD}, rcpt_code=code) as s:
        result = make_sink(s.port, ca).send([make_alert().record()])
        assert not result.ok and result.permanent is permanent
        assert f"every recipient refused (SMTP {code})" in result.error


def test_no_tls_and_no_auth_when_configured_so() -> None:
    with serve() as plain:
        sink = make_sink(plain.port, None, tls="none", username=None, password_env=None)
        assert sink.send([make_alert().record()]).ok
        (mail,) = plain.mails
        assert (mail.tls, mail.user) == (False, None)


def test_wire_values_cannot_inject_headers(smtp: SmtpServer, ca: CA) -> None:
    hostile = make_alert(
        device="cam\r\nBcc: victim@evil.example",
        summary="x\r\n.\r\nMAIL FROM:<a@b>\r\nBcc: victim@evil.example",
        peer_name="evil\nX-Injected: 1\x00\x1b[31m",
    )
    sink = make_sink(smtp.port, ca, subject="{rule} {device} {peer}")
    assert sink.send([hostile.record()]).ok
    (mail,) = smtp.mails
    msg = mail.parsed()
    assert msg["Bcc"] is None and msg["X-Injected"] is None
    subject = str(msg["Subject"]).strip()  # a long subject is folded onto a second line
    assert subject == "cloud_registration cam Bcc: victim@evil.example evil X-Injected: 1 [31m"
    assert mail.rcpt_to == ["security@hospital.example", "noc@hospital.example"]
    header_names = {line.split(b":")[0] for line in mail.data.split(b"\r\n\r\n")[0].splitlines()}
    assert b"Bcc" not in header_names
    body_lines = msg.get_content().splitlines()
    assert "x . MAIL FROM:<a@b> Bcc: victim@evil.example" in body_lines  # one line
    assert not [line for line in body_lines if line.startswith(("Bcc", "MAIL", "."))]


def test_subject_template_and_one_line() -> None:
    record = make_alert(site="north").record(2)
    template = "{severity}|{rule}|{device}|{device_ip}|{peer}|{country}|{site}|{count}"
    assert subject_of(template, [record]) == (
        "high|cloud_registration|lobby-1|10.20.0.11|dev.hik-connect.com|CN|north|2"
    )
    bare = make_alert(peer_name=None, peer_ip=None, peer_country=None).record()
    assert subject_of("{peer} {country} {site}", [bare]) == "- - -"
    assert one_line("a\u2028b\u200e\tc  d", 100) == "a b c d"  # line separator, LRM, tab
    assert one_line("x" * 300, 10) == "x" * 9 + "\u2026"


def test_the_attempt_has_a_total_deadline() -> None:
    with serve(trickle_s=1.0) as slow:  # the 36-byte greeting takes 36 s
        sink = make_sink(slow.port, None, tls="none", username=None, password_env=None)
        sink.timeout_s = 1.0
        start = time.monotonic()
        result = sink.send([make_alert().record()])
        elapsed = time.monotonic() - start
    assert not result.ok and not result.permanent
    assert result.error == "SMTP connect: timed out (deadline 1 s or shutdown)"
    assert elapsed < 3.0


def test_abort_ends_an_attempt_in_progress() -> None:
    with serve(trickle_s=1.0) as slow:
        sink = make_sink(slow.port, None, tls="none", username=None, password_env=None)
        sink.timeout_s = 30.0
        threading.Timer(0.5, sink.abort).start()
        start = time.monotonic()
        result = sink.send([make_alert().record()])
        assert not result.ok and "timed out" in result.error
        assert time.monotonic() - start < 5.0


def test_connection_refused_is_retryable(smtp: SmtpServer, ca: CA) -> None:
    port = smtp.port
    with serve() as gone:
        port = gone.port
    result = make_sink(port, ca).send([make_alert().record()])
    assert not result.ok and not result.permanent
    assert result.error.startswith("SMTP connect: connection failed")


def test_missing_password_and_unloadable_ca_fail_at_build(tmp_path: Path) -> None:
    with pytest.raises(SinkError, match=r"sink mail: password_env SMTP_PW is empty or unset"):
        SmtpSink(
            SinkConfig(
                name="mail",
                type="smtp",
                smarthost=HostPort("127.0.0.1", 25),
                mail_from="a@b.example",
                mail_to=("c@d.example",),
                username="u",
                password_env="SMTP_PW",
            ),
            environ={},
        )
    bogus = tmp_path / "ca.crt"
    bogus.write_text("not a certificate\n", encoding="utf-8")
    with pytest.raises(SinkError, match=r"sink mail: cannot load ca_file .*ca\.crt"):
        make_sink(25, None, ca_file=bogus)


def test_an_ended_incident_reads_as_one() -> None:
    end = make_end().record()
    assert subject_of("[netwatch] {severity} {rule} {device}", [end]) == (
        "Ended: [netwatch] critical cloud_registration lobby-1"
    )
    body = body_of([end, make_alert().record()], "https://g.example/c?d={device}")
    assert body.startswith("netwatch raised 1 alert. 1 incident ended.\n")
    assert "Status: ended (not seen for alerts.resolve_s)" in body
    assert "First seen: 2026-01-01 00:00:00 UTC" in body
    assert "Last seen: 2026-01-01 01:00:00 UTC" in body
    assert "Peers: dev.hik-connect.com, 47.1.2.4" in body
    assert "Dashboard: https://g.example/c?d=lobby-1" in body
