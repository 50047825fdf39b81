"""``netwatch alert-test``: one synchronous test alert per sink, filters bypassed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from netwatch.cli import main
from tests.sinks.httpstub import serve
from tests.sinks.smtpserver import serve as smtp_serve
from tests.test_daemon import free_port


def write(tmp: Path, hook_url: str) -> Path:
    (tmp / "hook").write_text(hook_url + "\n")
    (tmp / "dead").write_text(f"http://127.0.0.1:{free_port()}/x\n")
    for secret in ("hook", "dead"):
        (tmp / secret).chmod(0o600)  # a secret readable by others is refused
    path = tmp / "netwatch.yaml"
    path.write_text(
        "sinks:\n"
        # filters that would drop an info alert of another rule: alert-test ignores them
        f"  - {{name: log, type: jsonl, path: {tmp / 'alerts.jsonl'}, min_severity: critical}}\n"
        f"  - {{name: hook, type: webhook, url_file: {tmp / 'hook'}, rules: [rogue_dns]}}\n"
        f"  - {{name: dead, type: webhook, url_file: {tmp / 'dead'}}}\n"
    )
    return path


def test_sends_to_every_sink_and_reports_each(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with serve() as stub:
        path = write(tmp_path, stub.url + "/hook")
        assert main(["alert-test", "-c", str(path)]) == 1  # one sink is down
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "log (jsonl): OK" and out[1] == "hook (webhook): OK"
    assert out[2].startswith("dead (webhook): FAILED: ") and "/x" not in out[2]  # URL secret
    (record,) = [json.loads(x) for x in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert record["rule"] == "alert_test" and record["severity"] == "info"
    assert record["device_ip"] == "192.0.2.1" and "test alert" in record["summary"]
    (alert,) = stub.requests[0].json()["alerts"]
    assert alert["labels"]["alertname"] == "alert_test"


def test_one_named_sink(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "http://127.0.0.1:1/unused")
    assert main(["alert-test", "-c", str(path), "--sink", "log"]) == 0
    assert capsys.readouterr().out == "log (jsonl): OK\n"


def test_an_unknown_sink_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "http://127.0.0.1:1/unused")
    assert main(["alert-test", "-c", str(path), "--sink", "pager"]) == 2
    assert "no sink named 'pager' (sinks: log, hook, dead)" in capsys.readouterr().err


def test_without_sinks_nothing_is_sent(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["alert-test"]) == 1
    assert "no sinks configured" in capsys.readouterr().out


def test_teams_and_smtp_sinks_by_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with serve() as stub, smtp_serve() as smtp:
        (tmp_path / "teams").write_text(stub.url + "/teams\n")
        (tmp_path / "teams").chmod(0o600)
        path = tmp_path / "netwatch.yaml"
        path.write_text(
            "sinks:\n"
            f"  - {{name: ward, type: teams, url_file: {tmp_path / 'teams'}}}\n"
            f"  - {{name: mail, type: smtp, smarthost: '127.0.0.1:{smtp.port}', tls: none,\n"
            "     mail_from: netwatch@example.org, mail_to: [oncall@example.org]}\n"
        )
        assert main(["alert-test", "-c", str(path), "--sink", "ward"]) == 0
        assert main(["alert-test", "-c", str(path), "--sink", "mail"]) == 0
        assert capsys.readouterr().out == "ward (teams): OK\nmail (smtp): OK\n"
        card = stub.requests[0].json()["attachments"][0]["content"]
        facts = {f["title"]: f["value"] for e in card["body"] for f in e.get("facts", ())}
        assert (facts["Rule"], facts["Seen"]) == ("alert\\_test", "1 time")
        (mail,) = smtp.mails
        assert mail.parsed()["Subject"] == "[netwatch] info alert_test netwatch-alert-test"
