from __future__ import annotations

from netwatch.config.schema import SinkConfig
from netwatch.sinks.slack import SlackSink
from tests.sinks.conftest import make_alert
from tests.sinks.httpstub import Stub


def test_text_and_blocks(stub: Stub) -> None:
    cfg = SinkConfig(name="chat", type="slack", url_env="NW_SLACK")
    sink = SlackSink(cfg, environ={"NW_SLACK": stub.url + "/services/T/B/x"})
    records = [make_alert().record(), make_alert(rule="rogue_dns", severity="medium").record()]
    assert sink.send(records).ok
    body = stub.requests[0].json()
    line = (
        "[high] cloud_registration lobby-1 -&gt; dev.hik-connect.com CN: "
        "lobby-1 registered with &lt;Hik-Connect&gt; &amp; co"
    )
    assert body["text"] == line + "\n" + line.replace(
        "[high] cloud_registration", "[medium] rogue_dns"
    )
    assert body["blocks"][0] == {"type": "section", "text": {"type": "mrkdwn", "text": line}}
    assert len(body["blocks"]) == 2


def test_rate_limited_is_retryable(stub: Stub) -> None:
    stub.script.append((429, {"Retry-After": "3"}))
    sink = SlackSink(SinkConfig(name="c", type="slack", url_env="U"), environ={"U": stub.url})
    result = sink.send([make_alert().record()])
    assert not result.ok and result.retry_after == 3.0 and not result.permanent
