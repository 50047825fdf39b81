"""RTSP request/response head parser, with the media types of an SDP body when one is present.

Runs only on the first payload bytes of flows the fast path flags as RTSP (port 554/8554 or
``looks_like_rtsp``); never per packet. Reads no configuration. :class:`RtspParser` is the
registered deep parser: it claims a TCP client's first bytes that ``looks_like_rtsp`` (after
HTTP: ``OPTIONS`` is HTTP's) and a server's that start ``RTSP/``, and keeps inspecting
(later messages carry SETUP, ANNOUNCE and the DESCRIBE reply's SDP). dpkt has no RTSP module; RTSP
heads share HTTP's syntax, so this reuses ``netwatch.deep.http.parse_head``.

``media`` lists the SDP ``m=`` media types (``video``, ``audio``, ...) found in a body that is
SDP (``Content-Type: application/sdp``, or a body starting ``v=0``).  Callers concatenate a
DESCRIBE response head and the following segments in order, since servers often send the SDP
body in a segment of its own.

Known limits:
- Interleaved RTP (``$`` framing) and RTSP over HTTP tunnelling are not parsed (None).
- An ``m=`` line cut before its first space is ignored; at most ``MAX_MEDIA`` are kept.
- Requests with any upper-case method token are accepted as long as the version is RTSP/x.y.
- The UDP media flows a SETUP negotiates are not named from here (with several capture workers
  they hash to another worker than the RTSP connection): :mod:`netwatch.deep.rtp` names them
  by their content.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from netwatch.deep.base import Context, DeepParser, Verdict, service
from netwatch.deep.http import (
    MessageHead,
    head_incomplete,
    parse_head,
    split_request_line,
    split_status_line,
)

if TYPE_CHECKING:
    from netwatch.flow.table import Flow

MAX_MEDIA = 16
MAX_SDP_BYTES = 8192  # SDP body bytes examined (capped further by Content-Length)

RTSP_METHODS = frozenset(
    {
        "OPTIONS", "DESCRIBE", "SETUP", "PLAY", "PAUSE", "TEARDOWN", "GET_PARAMETER",
        "SET_PARAMETER", "ANNOUNCE", "RECORD", "REDIRECT", "PLAY_NOTIFY",
    }
)  # fmt: skip
_RTSP_VERSION = re.compile(r"RTSP/\d\.\d")
_METHOD_TOKEN = re.compile(r"[A-Z][A-Z_-]{0,31}")
_LEADING_DIGITS = re.compile(r"\d{1,10}")
_MEDIA_LINE = re.compile(rb"^m=([!-~]+) ", re.MULTILINE)  # media type of an SDP m= line
_SNIFF_METHODS = tuple(f"{method} ".encode() for method in sorted(RTSP_METHODS))


@dataclass(frozen=True, slots=True)
class RtspMessage:
    """One RTSP request (method, uri) or response (status), with the fields netwatch uses."""

    is_request: bool
    method: str | None
    uri: str | None
    status: int | None
    server: str | None
    www_authenticate: str | None
    user_agent: str | None
    cseq: int | None
    transport: str | None
    media: tuple[str, ...]


def looks_like_rtsp(data: bytes) -> bool:
    """Cheap check: starts with ``RTSP/`` (response) or a known RTSP method and a space."""
    return data.startswith(b"RTSP/") or data.startswith(_SNIFF_METHODS)


#: A message's fields in :class:`RtspMessage`'s order: what the readers below return, the
#: object made only for the public API (a frozen slotted dataclass sets each field through
#: ``object.__setattr__``, ~1.7k instructions a field, ten here: the deep parser's own path
#: takes the tuple).
_Fields = tuple[
    bool, str | None, str | None, int | None, str | None, str | None, str | None, int | None,
    str | None, tuple[str, ...],
]  # fmt: skip


def parse_rtsp(data: bytes) -> RtspMessage | None:
    """Parse an RTSP request or response head (and SDP media); None if it is not RTSP."""
    fields = _read(parse_head(data))
    return None if fields is None else RtspMessage(*fields)


def _read(head: MessageHead | None) -> _Fields | None:
    """:func:`parse_rtsp`'s fields, of the bytes ``head`` was parsed from."""
    if head is None:
        return None
    if head.start_line.startswith("RTSP/"):
        return _response(head)
    return _request(head)


def _request(head: MessageHead) -> _Fields | None:
    parts = split_request_line(head.start_line)
    if parts is None or not _METHOD_TOKEN.fullmatch(parts[0]):
        return None
    if not _RTSP_VERSION.fullmatch(parts[2]):
        return None
    return _message(head, is_request=True, method=parts[0], uri=parts[1], status=None)


def _response(head: MessageHead) -> _Fields | None:
    parts = split_status_line(head.start_line)
    if parts is None or not _RTSP_VERSION.fullmatch(parts[0]):
        return None
    return _message(head, is_request=False, method=None, uri=None, status=parts[1])


def _message(
    head: MessageHead, *, is_request: bool, method: str | None, uri: str | None, status: int | None
) -> _Fields:
    # each header's first value (``http.header``), from one dict instead of a scan per name
    field = dict(reversed(head.headers)).get
    return (
        is_request,
        method,
        uri,
        status,
        field("server"),
        field("www-authenticate"),
        field("user-agent"),
        _cseq(field("cseq")),
        field("transport"),
        _sdp_media(head.body, field),  # media
    )


def _cseq(value: str | None) -> int | None:
    match = _LEADING_DIGITS.match(value) if value else None
    return int(match.group()) if match else None


def _sdp_media(body: bytes | None, field: Callable[[str], str | None]) -> tuple[str, ...]:
    """The ``m=`` media types of an SDP body (``field``: the head's first value of a header)."""
    if not body:
        return ()
    content_type = (field("content-type") or "").lower()
    if "application/sdp" not in content_type and not body.startswith(b"v=0"):
        return ()
    length = _LEADING_DIGITS.match(field("content-length") or "")
    body = body[: int(length.group()) if length else MAX_SDP_BYTES]
    kinds = _MEDIA_LINE.findall(body, 0, MAX_SDP_BYTES)[:MAX_MEDIA]
    return tuple(kind.decode("ascii").lower() for kind in kinds)


class RtspParser(DeepParser):
    """RTSP requests and replies: User-Agent, Server, and the SDP media types (video, audio)."""

    rank = 30
    client_magic = (b"RTSP/", *_SNIFF_METHODS)
    server_magic = (b"RTSP/",)

    def tcp(self, ctx: Context, flow: Flow, is_orig: bool, buf: bytes, ts: float) -> Verdict:
        head = parse_head(buf)
        if is_orig:
            # later requests (SETUP, ANNOUNCE) still tell something
            return Verdict.MORE if self._message(ctx, flow, head) else Verdict.DONE
        if head_incomplete(head):
            return Verdict.WAIT
        self._message(ctx, flow, head)  # the head parsed once for both
        return Verdict.MORE  # the DESCRIBE reply with its SDP may come after OPTIONS

    @staticmethod
    def _message(ctx: Context, flow: Flow, head: MessageHead | None) -> bool:
        fields = _read(head)  # no RtspMessage made
        if fields is None:
            return False
        ctx.count("rtsp")
        service(flow, "rtsp")
        _, _, _, _, server, www_authenticate, user_agent, _, _, media = fields
        if user_agent:
            flow.app_set("user_agent", user_agent)
        if server:
            flow.app_set("server", server)
            ctx.banner(flow, "rtsp_server", server)
        if www_authenticate:  # a 401 to DESCRIBE names the camera's realm, as in HTTP
            flow.app_set("www_authenticate", www_authenticate)
            ctx.banner(flow, "www_authenticate", www_authenticate)
        _add_media(flow, media)
        return True


def _add_media(flow: Flow, media: tuple[str, ...]) -> None:
    """Union of the SDP media types (video, audio, ...) seen in the flow's RTSP messages."""
    if not media:
        return
    seen = flow.app.get("rtsp_media", ()) if flow.app is not None else ()
    merged = tuple(dict.fromkeys((*seen, *media)))
    if flow.app is None:
        flow.app = {}
    flow.app["rtsp_media"] = merged
