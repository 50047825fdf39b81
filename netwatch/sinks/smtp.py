"""The e-mail sink: one plain-text message per batch, sent with ``smtplib``.

Each attempt connects to the smarthost, says EHLO, switches to TLS (``tls: starttls``, the
default: a server that does not offer STARTTLS fails the attempt, so a man in the middle
cannot strip it) or speaks TLS from the start (``tls: implicit``, port 465), logs in when a
``username`` is set (smtplib picks CRAM-MD5, PLAIN or LOGIN from what the server offers),
and sends one message: ``From``, ``To``, ``Date``, ``Message-ID``, ``Auto-Submitted:
auto-generated`` (RFC 3834, so auto-responders stay quiet) and ``Subject`` from the
``subject`` template (first alert of the batch, ``(+N more)`` after it; ``Ended:`` before
it when that alert is an incident's end). The body has a block per alert: summary, then the
same facts the Teams card shows (:func:`~netwatch.sinks.message.fields_of`), the findings
folded into it, the dashboard link (``alerts.dashboard_url``), then the evidence.

Header injection: every value that comes from the wire (device and peer names, summaries)
and goes into ``Subject`` has its control characters (CR and LF among them) replaced by
spaces and is cut to ``MAX_SUBJECT`` characters; the body's values are kept to one line
each, so a crafted name cannot forge a field. Addresses come from the config only, checked
at load.

Deadline: the whole attempt (connect, TLS, login, message, QUIT) must fit in ``timeout_s``
(cut short by the sink's shutdown ``cutoff``): the socket timeout bounds the connect, and a
timer shuts the socket down at the deadline, so a server that answers one byte at a time
cannot hold the sender. Failures: SMTP 5xx answers (authentication refused, sender or all
recipients refused, message refused) are permanent; 4xx answers, a missing STARTTLS or
AUTH, TLS errors, timeouts and connection errors are retried. A message accepted for some
recipients and refused for others counts as delivered.

Config read: ``sinks[].smarthost``, ``tls``, ``mail_from``, ``mail_to``, ``subject``,
``username`` with ``password_file``/``password_env`` (secret, never in errors or repr),
``ca_file``, ``cert_file``/``key_file``, ``server_name`` (the name the server's certificate
must carry; default the smarthost's host), ``ended`` (default true: a message when an
incident ends). Known limits: the TLS name is set through smtplib's private ``_host`` (its
constructor would connect before the deadline timer runs); no HTML part; one smarthost (no
MX lookup, no fallback host).
"""

from __future__ import annotations

import json
import re
import smtplib
import socket
import ssl
import time
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formatdate, make_msgid
from enum import Enum
from typing import Any

from netwatch.alerts.model import Status, status_of
from netwatch.config.schema import SinkConfig
from netwatch.sinks.base import (
    MIN_ATTEMPT_S,
    Attempts,
    Cutoff,
    Delivery,
    Record,
    Secret,
    Sink,
    SinkError,
    describe_tls_error,
    tls_context,
)
from netwatch.sinks.message import dashboard_link, fields_of, folded_of

MAX_SUBJECT = 200
MAX_VALUE = 2000  # characters of one body value
MAX_REPLY = 200  # characters of a server's reply quoted in an error
_SPACES = re.compile(r"\s+")


class Stage(Enum):
    """Where in the SMTP dialogue an attempt was, for the error text."""

    CONNECT = "connect"
    EHLO = "EHLO"
    STARTTLS = "STARTTLS"
    AUTH = "AUTH"
    SEND = "MAIL/RCPT/DATA"
    QUIT = "QUIT"


def one_line(value: object, limit: int) -> str:
    """``value`` as one line of text: control and other invisible format characters become
    spaces, runs of white space one space, cut to ``limit`` characters."""
    text = "".join(" " if unicodedata.category(c)[0] in "CZ" else c for c in str(value))
    text = _SPACES.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def subject_fields(record: Mapping[str, Any]) -> dict[str, str]:
    """The values a subject template may use (config ``SUBJECT_FIELDS``), as one-liners."""
    raw = {
        "severity": record.get("severity"),
        "rule": record.get("rule"),
        "device": record.get("device"),
        "device_ip": record.get("device_ip"),
        "peer": record.get("peer_name") or record.get("peer_ip"),
        "country": record.get("peer_country"),
        "site": record.get("site"),
        "count": record.get("count"),
    }
    return {k: one_line("-" if v is None or v == "" else v, MAX_SUBJECT) for k, v in raw.items()}


def subject_of(template: str, payloads: Sequence[Record]) -> str:
    """The Subject header: the template filled in from the first alert, safe as a header."""
    text = template.format_map(subject_fields(payloads[0]))
    if status_of(payloads[0]) is Status.ENDED:
        text = f"Ended: {text}"
    more = f" (+{len(payloads) - 1} more)" if len(payloads) > 1 else ""
    return one_line(text, MAX_SUBJECT - len(more)) + more


def body_of(payloads: Sequence[Record], dashboard_url: str | None = None) -> str:
    """The plain-text body: one block per alert."""
    blocks = []
    for record in payloads:
        lines = [one_line(record.get("summary", ""), MAX_VALUE), ""]
        lines += [f"{title}: {one_line(value, MAX_VALUE)}" for title, value in fields_of(record)]
        lines += [f"Also: {one_line(f, MAX_VALUE)}" for f in folded_of(record)]
        link = dashboard_link(dashboard_url, record)
        if link:
            lines.append(f"Dashboard: {one_line(link, MAX_VALUE)}")
        evidence = record.get("evidence")
        if evidence:
            compact = json.dumps(evidence, sort_keys=True, ensure_ascii=False, default=str)
            lines.append(f"Evidence: {one_line(compact, MAX_VALUE)}")
        blocks.append("\n".join(lines))
    ended = sum(status_of(r) is Status.ENDED for r in payloads)
    raised = len(payloads) - ended
    said = [f"netwatch raised {raised} alert{'s' if raised != 1 else ''}."] if raised else []
    if ended:
        said.append(f"{ended} incident{'s' if ended != 1 else ''} ended.")
    head = " ".join(said) + "\n\n"
    return head + "\n\n-- \n\n".join(blocks) + "\n"


def _reply_text(reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    return one_line(text, MAX_REPLY)


def classify(exc: Exception, stage: Stage, fired: bool, deadline_s: float) -> Delivery:
    """A failed attempt as a Delivery (not yet scrubbed of secrets)."""
    where = f"SMTP {stage.value}"
    if fired or isinstance(exc, TimeoutError):
        return Delivery.failure(f"{where}: timed out (deadline {deadline_s:g} s or shutdown)")
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        permanent = bool(codes) and all(code >= 500 for code in codes)
        return Delivery.failure(
            f"{where}: every recipient refused (SMTP {', '.join(map(str, sorted(set(codes))))})",
            permanent=permanent,
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        code = exc.smtp_code
        what = "authentication failed" if stage is Stage.AUTH else "refused"
        text = f"{where}: {what} (SMTP {code} {_reply_text(exc.smtp_error)})"
        return Delivery.failure(text, permanent=code >= 500)
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        missing = "STARTTLS" if stage is Stage.STARTTLS else "AUTH"
        return Delivery.failure(f"{where}: the server does not offer {missing}")
    if isinstance(exc, ssl.SSLError):
        return Delivery.failure(f"{where}: {describe_tls_error(exc)}")
    if isinstance(exc, OSError) and exc.strerror:
        return Delivery.failure(f"{where}: connection failed: {exc.strerror}")
    return Delivery.failure(f"{where}: connection failed: {type(exc).__name__}")


class _Client(smtplib.SMTP):
    _host: str


class _TlsClient(smtplib.SMTP_SSL):
    _host: str


class SmtpSink(Sink):
    """Sends each batch of alerts as one e-mail through an SMTP smarthost."""

    max_batch = 20
    ENDED_DEFAULT = True

    def __init__(
        self,
        config: SinkConfig,
        *,
        environ: Mapping[str, str] | None = None,
        timeout_s: float = 10.0,
        clock: Callable[[], float] = time.time,
        hostname: str | None = None,
    ) -> None:
        super().__init__(config, environ=environ)
        if config.smarthost is None or config.mail_from is None or not config.mail_to:
            raise SinkError(f"sink {config.name}: smarthost, mail_from and mail_to are required")
        self.smarthost = config.smarthost
        self._server_name = config.server_name or config.smarthost.host
        self.mail_from = config.mail_from
        self.mail_to = config.mail_to
        self.mode = config.tls
        self.subject = config.subject
        self.timeout_s = timeout_s
        self._clock = clock
        self._local = hostname or socket.gethostname() or "localhost"
        self._login: tuple[str, Secret] | None = None
        if config.username is not None:
            password = self._secret("password", config.password_file, config.password_env)
            self._login = (config.username, password)
        self._tls: ssl.SSLContext | None = None
        if self.mode != "none":
            self._tls = tls_context(self.name, config.ca_file, config.cert_file, config.key_file)
        self._attempts = Attempts()

    def message(self, payloads: Sequence[Record]) -> EmailMessage:
        """The e-mail for a batch of alert records."""
        msg = EmailMessage(policy=SMTP_POLICY)
        msg["From"] = self.mail_from
        msg["To"] = ", ".join(self.mail_to)
        msg["Subject"] = subject_of(self.subject, payloads)
        msg["Date"] = formatdate(self._clock(), usegmt=True)
        msg["Message-ID"] = make_msgid("netwatch", domain=self.mail_from.rsplit("@", 1)[1])
        msg["Auto-Submitted"] = "auto-generated"
        msg.set_content(body_of(payloads, self.dashboard_url))
        return msg

    def send(self, payloads: Sequence[Record]) -> Delivery:
        budget = self.attempt_budget(self.timeout_s)
        if budget < MIN_ATTEMPT_S:
            return Delivery.failure("no time left for an attempt (shutting down)")
        msg = self.message(payloads)
        client = self._client(budget)
        cutoff = Cutoff(client, budget)
        self._attempts.add(cutoff)
        stage = Stage.CONNECT
        try:
            code, greeting = client.connect(self.smarthost.host, self.smarthost.port)
            if cutoff.fired:
                raise TimeoutError
            if code != 220:
                raise smtplib.SMTPConnectError(code, greeting)
            stage = Stage.EHLO
            client.ehlo()
            if self.mode == "starttls":
                stage = Stage.STARTTLS
                client.starttls(context=self._tls)
                client.ehlo()
            if self._login is not None:
                stage = Stage.AUTH
                client.login(self._login[0], self._login[1].reveal())
            stage = Stage.SEND
            client.send_message(msg, self.mail_from, list(self.mail_to))
            stage = Stage.QUIT
            client.quit()
        except (smtplib.SMTPException, OSError, ValueError) as exc:
            if stage is Stage.QUIT:
                return Delivery.success()  # the message was accepted before QUIT failed
            failed = classify(exc, stage, cutoff.fired, budget)
            return Delivery.failure(
                self.scrub(failed.error), failed.retry_after, permanent=failed.permanent
            )
        finally:
            self._attempts.discard(cutoff)
            cutoff.cancel()
            client.close()
        return Delivery.success()

    def _client(self, budget: float) -> smtplib.SMTP:
        client: smtplib.SMTP
        if self.mode == "implicit":
            client = _TlsClient(local_hostname=self._local, timeout=budget, context=self._tls)
        else:
            client = _Client(local_hostname=self._local, timeout=budget)
        # smtplib checks the certificate against the host given to its constructor, which
        # would connect at once (before the deadline timer): set it without connecting
        client._host = self._server_name
        return client

    def abort(self) -> None:
        self._attempts.abort()
