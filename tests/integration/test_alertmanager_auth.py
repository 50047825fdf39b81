"""The Alertmanager sink against a real Alertmanager behind TLS, a client certificate and
basic auth (its ``--web.config.file``), with a private CA made at test time.

One ``prometheus-alertmanager`` on loopback requires a client certificate from the test CA
and the basic-auth user ``netwatch`` (bcrypt hash). Checked: delivery with the right
password, CA and client certificate (the alert is then listed by Alertmanager's API); a
wrong password is a permanent failure (401) whose text holds no secret; a CA that did not
sign the server's certificate and a missing client certificate are retryable failures that
say what is wrong; ``netwatch alert-test`` through a config file reaches it.

Skipped when ``prometheus-alertmanager`` or ``openssl`` is not installed.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import pytest

from netwatch.alerttest import run_alert_test
from netwatch.config import Config
from netwatch.config.schema import SinkConfig
from netwatch.sinks.alertmanager import AlertmanagerSink
from tests.integration.stack import LOOPBACK, Proc, free_port
from tests.sinks.conftest import make_alert
from tests.sinks.tlsca import CA, OPENSSL, Pair

ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
if ALERTMANAGER is None or OPENSSL is None:
    pytest.skip(
        "needs prometheus-alertmanager and openssl "
        f"(found alertmanager={ALERTMANAGER}, openssl={OPENSSL})",
        allow_module_level=True,
    )

USER = "netwatch"
PASSWORD = "am-pa55word-for-tests"
READY_TIMEOUT_S = 30.0


@dataclass
class SecureAm:
    url: str
    ca: CA
    client: Pair
    password_file: Path
    proc: Proc

    def get(self, path: str) -> Any:
        """GET ``path`` as the netwatch user with the client certificate; decoded JSON."""
        context = ssl.create_default_context(cafile=str(self.ca.cert))
        context.load_cert_chain(self.client.cert, self.client.key)
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        request = urllib.request.Request(
            self.url + path, headers={"Authorization": f"Basic {token}"}
        )
        with urllib.request.urlopen(request, timeout=5.0, context=context) as reply:
            return json.loads(reply.read() or b"null")


def _wait_ready(am: SecureAm) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    last = ""
    while time.monotonic() < deadline:
        if not am.proc.running():
            raise RuntimeError(f"alertmanager exited\n{am.proc.tail()}")
        try:
            am.get("/api/v2/status")
            return
        except (OSError, urllib.error.URLError) as exc:
            last = str(exc)
        time.sleep(0.2)
    raise RuntimeError(f"alertmanager not ready: {last}\n{am.proc.tail()}")


@pytest.fixture(scope="module")
def secure_am(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureAm]:
    tmp = tmp_path_factory.mktemp("am-auth")
    ca = CA(tmp / "ca")
    server = ca.issue("am-server", dns=("alertmanager.test",), ips=(LOOPBACK,))
    client = ca.issue("netwatch-client", client=True)
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    web = tmp / "web.yml"
    web.write_text(
        "tls_server_config:\n"
        f"  cert_file: {server.cert}\n"
        f"  key_file: {server.key}\n"
        "  client_auth_type: RequireAndVerifyClientCert\n"
        f"  client_ca_file: {ca.cert}\n"
        f"basic_auth_users:\n  {USER}: '{hashed}'\n",
        encoding="utf-8",
    )
    am_cfg = tmp / "am.yml"
    am_cfg.write_text("route: {receiver: 'null'}\nreceivers: [{name: 'null'}]\n", encoding="utf-8")
    password_file = tmp / "am-password"
    password_file.write_text(PASSWORD + "\n", encoding="utf-8")
    password_file.chmod(0o600)
    port = free_port()
    assert ALERTMANAGER is not None
    proc = Proc(
        "alertmanager",
        [
            ALERTMANAGER,
            f"--config.file={am_cfg}",
            f"--storage.path={tmp / 'data'}",
            f"--web.listen-address={LOOPBACK}:{port}",
            f"--web.config.file={web}",
            "--cluster.listen-address=",
        ],
        tmp / "alertmanager.log",
        cwd=tmp,
    )
    am = SecureAm(f"https://{LOOPBACK}:{port}", ca, client, password_file, proc)
    try:
        _wait_ready(am)
        yield am
    finally:
        proc.stop()


def sink(am: SecureAm, **kw: Any) -> AlertmanagerSink:
    values: dict[str, Any] = {
        "name": "am",
        "type": "alertmanager",
        "urls": (am.url,),
        "username": USER,
        "password_file": am.password_file,
        "ca_file": am.ca.cert,
        "cert_file": am.client.cert,
        "key_file": am.client.key,
    }
    values.update(kw)
    return AlertmanagerSink(SinkConfig(**values), timeout_s=5.0)


def test_delivery_with_password_ca_and_client_certificate(secure_am: SecureAm) -> None:
    result = sink(secure_am).send([make_alert(device="auth-cam-1").record()])
    assert result.ok, result
    alerts = secure_am.get("/api/v2/alerts?active=true")
    labels = [a["labels"] for a in alerts if a["labels"].get("device") == "auth-cam-1"]
    assert labels and labels[0]["alertname"] == "cloud_registration", alerts


def test_wrong_password_is_permanent_and_names_no_secret(
    secure_am: SecureAm, tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-am-password\n", encoding="utf-8")
    result = sink(secure_am, password_file=wrong).send([make_alert().record()])
    assert (result.ok, result.permanent) == (False, True)
    assert result.error == "urls[0]: HTTP 401"
    assert "not-the-am-password" not in result.error and PASSWORD not in result.error


def test_a_ca_that_did_not_sign_the_server_is_retryable(
    secure_am: SecureAm, tmp_path: Path
) -> None:
    other = CA(tmp_path / "other", name="not the Alertmanager's CA")
    result = sink(secure_am, ca_file=other.cert).send([make_alert().record()])
    assert (result.ok, result.permanent) == (False, False)
    assert result.error.startswith("urls[0]: TLS: the server's certificate is not trusted (")
    assert "ca_file sets the CA" in result.error and PASSWORD not in result.error


def test_server_name_when_the_url_names_another_host(secure_am: SecureAm) -> None:
    # the certificate carries alertmanager.test and 127.0.0.1; "localhost" is neither
    url = secure_am.url.replace(LOOPBACK, "localhost")
    wrong = sink(secure_am, urls=(url,)).send([make_alert().record()])
    assert not wrong.ok and "not valid for the host name checked" in wrong.error
    named = sink(secure_am, urls=(url,), server_name="alertmanager.test")
    assert named.send([make_alert(device="auth-cam-2").record()]).ok


def test_no_client_certificate_is_a_retryable_tls_failure(secure_am: SecureAm) -> None:
    result = sink(secure_am, cert_file=None, key_file=None).send([make_alert().record()])
    assert (result.ok, result.permanent) == (False, False)
    assert result.error.startswith(("urls[0]: TLS handshake failed (", "urls[0]: connection"))


def test_alert_test_reaches_it_through_a_config_file(secure_am: SecureAm, tmp_path: Path) -> None:
    config = tmp_path / "netwatch.yaml"
    config.write_text(
        "sinks:\n"
        "  - name: am\n"
        "    type: alertmanager\n"
        f"    urls: ['{secure_am.url}']\n"
        f"    username: {USER}\n"
        f"    password_file: {secure_am.password_file}\n"
        f"    ca_file: {secure_am.ca.cert}\n"
        f"    cert_file: {secure_am.client.cert}\n"
        f"    key_file: {secure_am.client.key}\n",
        encoding="utf-8",
    )
    out = io.StringIO()
    assert run_alert_test(Config.load(config), "am", out) == 0, out.getvalue()
    assert out.getvalue() == "am (alertmanager): OK\n"
    alerts = secure_am.get("/api/v2/alerts?active=true")
    assert any(a["labels"].get("alertname") == "alert_test" for a in alerts)
