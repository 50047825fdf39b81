"""SSH deep parser: Zeek's ``ssh`` service, confirmed when the key exchange completes.

Zeek's SSH analyzer (read for behaviour) is attached to TCP 22 and, elsewhere, when both sides
open with an ``SSH-<major>.`` version line (its DPD signatures); it confirms the protocol when
it sees an ``SSH_MSG_NEWKEYS`` message (type 21, RFC 4253 section 7.3) from either side, i.e.
once a key exchange went through, and it reads the binary packets only once both sides' version
lines are known (a capture with one side only is not confirmed), on a connection whose SYN
was seen (Zeek's binpac analyzers ignore partial connections). :class:`SshParser` does the
same: after a side's version line (a server may send other lines first, RFC 4253 section 4.2)
it walks that side's unencrypted binary packets (``uint32 packet_length``,
``byte padding_length``, ``byte type``) until NEWKEYS. On port 22 a client that does not open
with ``SSH-`` is left to the other parsers (HTTP on port 22 is HTTP).

Bounded: the side's bytes are accumulated up to the inspector's ``deep.max_hello_bytes``
and its payload budget; at most ``MAX_PACKETS`` packets are walked and a packet longer than
``MAX_PACKET_LEN`` ends the look. Reads no configuration; never raises.
Known limit: SSH-1 (its session-key message) is not followed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from netwatch.deep.base import Context, DeepParser, Verdict, service, tcp_partial

if TYPE_CHECKING:
    from netwatch.flow.table import Flow

SSH_PORT: Final = 22
VERSION_PREFIX: Final = b"SSH-"
MSG_NEWKEYS: Final = 21
MAX_PACKETS: Final = 16
MAX_PACKET_LEN: Final = 35000  # RFC 4253 section 6.1: implementations must take 35000
MAX_PRE_BANNER: Final = 8192
STATE: Final = "_ssh"


@dataclass(slots=True)
class SshProgress:
    """Which sides sent their version line, and whether a NEWKEYS was seen (``flow.app``)."""

    versions: set[bool] = field(default_factory=set)  # by is_orig
    newkeys: bool = False


def version_end(buf: bytes, is_orig: bool) -> int | None:
    """Offset just after the side's version line; None while it is not complete.

    -1 when the bytes cannot be SSH (a client must start with it; a server may send other
    lines first, up to ``MAX_PRE_BANNER`` bytes)."""
    if buf.startswith(VERSION_PREFIX):
        start = 0
    elif is_orig:
        return -1 if len(buf) >= len(VERSION_PREFIX) or not VERSION_PREFIX.startswith(buf) else None
    else:
        found = buf.find(b"\n" + VERSION_PREFIX, 0, MAX_PRE_BANNER)
        if found < 0:
            return -1 if len(buf) >= MAX_PRE_BANNER else None
        start = found + 1
    end = buf.find(b"\n", start, start + 255)
    if end >= 0:
        return end + 1
    return -1 if len(buf) - start >= 255 else None  # RFC 4253: at most 255 characters


def newkeys_seen(buf: bytes, off: int) -> bool | None:
    """Whether a NEWKEYS message is among the packets from ``off``: True, False (the bytes
    cannot be SSH packets, or too many were walked), None (not yet: more bytes needed)."""
    for _ in range(MAX_PACKETS):
        if len(buf) < off + 6:
            return None
        length = int.from_bytes(buf[off : off + 4], "big")
        if length < 5 or length > MAX_PACKET_LEN:
            return False
        if buf[off + 5] == MSG_NEWKEYS:
            return True
        off += 4 + length
    return False


class SshParser(DeepParser):
    """SSH: ``ssh`` once a NEWKEYS message shows the key exchange went through."""

    rank = 35
    tcp_ports = frozenset({SSH_PORT})
    client_magic = (VERSION_PREFIX,)
    server_magic = (VERSION_PREFIX,)

    def tcp(self, ctx: Context, flow: Flow, is_orig: bool, buf: bytes, ts: float) -> Verdict:
        end = version_end(buf, is_orig)
        if end is None:
            return Verdict.WAIT
        if end < 0:
            return Verdict.PASS if is_orig else Verdict.DONE
        progress = flow.app.get(STATE) if flow.app is not None else None
        if progress is None:
            progress = SshProgress()
            flow.app_set(STATE, progress)
        progress.versions.add(is_orig)
        seen = newkeys_seen(buf, end)
        if seen:
            progress.newkeys = True
        if progress.newkeys and len(progress.versions) == 2 and not tcp_partial(flow):
            ctx.count("ssh_newkeys")
            service(flow, "ssh")
        if seen is None:
            return Verdict.WAIT
        return Verdict.DONE
