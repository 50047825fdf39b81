"""The metrics endpoint over real HTTP on 127.0.0.1, and the web-config loader."""

from __future__ import annotations

import base64
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import bcrypt
import pytest

from netwatch.metrics.server import MetricsServer, WebConfigError, load_web_config
from tests.metrics.conftest import Run


def get(url: str, auth: str | None = None) -> tuple[int, str, str]:
    req = urllib.request.Request(url)
    if auth is not None:
        req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read().decode()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.headers.get("WWW-Authenticate", ""), err.read().decode()


def test_metrics_and_landing_page(run: Run) -> None:
    with MetricsServer(run.registry, 0, version="0.1.0") as srv:
        base = f"http://127.0.0.1:{srv.port}"
        code, ctype, body = get(base + "/metrics")
        assert code == 200 and ctype.startswith("text/plain; version=0.0.4")
        assert "netwatch_packets_total 14.0" in body
        code, ctype, page = get(base + "/")
        assert code == 200 and ctype.startswith("text/html")
        assert '<a href="/metrics">' in page and "0.1.0" in page
        assert get(base + "/nope")[0] == 404


def test_promtool_check_metrics(run: Run) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not on PATH (Debian: apt-get install prometheus)")
    with MetricsServer(run.registry, 0) as srv:
        _, _, body = get(f"http://127.0.0.1:{srv.port}/metrics")
    done = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, text=True, check=False
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_basic_auth(run: Run, tmp_path: Path) -> None:
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    cfg = tmp_path / "web.yml"
    cfg.write_text(f"basic_auth_users:\n  prom: '{hashed}'\n")
    web = load_web_config(cfg)
    with MetricsServer(run.registry, 0, web=web) as srv:
        url = f"http://127.0.0.1:{srv.port}/metrics"
        assert get(url)[:2] == (401, 'Basic realm="netwatch"')
        assert get(url, "prom:wrong")[0] == 401
        assert get(url, "nobody:s3cret")[0] == 401
        code, _, body = get(url, "prom:s3cret")
        assert code == 200 and "netwatch_packets_total" in body


def test_basic_auth_without_bcrypt_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "bcrypt", None)  # import fails
    cfg = tmp_path / "web.yml"
    cfg.write_text("basic_auth_users:\n  prom: '$2y$10$x'\n")
    with pytest.raises(WebConfigError, match=r"web\.yml: basic_auth_users needs .*bcrypt"):
        load_web_config(cfg)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rate_limit: {}\n", r"rate_limit: not supported"),
        ("tls_server_config: {cert_file: a.crt}\n", r"cert_file and key_file are required"),
        (
            "tls_server_config: {cert_file: a.crt, key_file: a.key}\n",
            r"tls_server_config\.cert_file/key_file: ",
        ),
        ("tls_server_config: {cert_file: a, key_file: b, curve_preferences: []}\n", "curve"),
    ],
)
def test_web_config_errors_name_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    cfg = tmp_path / "web.yml"
    cfg.write_text(text)
    with pytest.raises(WebConfigError, match=message):
        load_web_config(cfg)


def test_empty_web_config_is_plain_http(tmp_path: Path) -> None:
    cfg = tmp_path / "web.yml"
    cfg.write_text("")
    web = load_web_config(cfg)
    assert web.tls is None and not web.users and web.authorized(None)
