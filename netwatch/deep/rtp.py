"""RTP audio recognition: is this UDP payload an RTP packet carrying a static audio codec?

RFC 3550 header: version 2 in the top two bits of the first byte, the payload type in the
low seven bits of the second. RFC 3551 assigns the static payload types 0-18 to audio
codecs (0 PCMU/G.711u, 3 GSM, 4 G.723, 5-6 DVI4, 7 LPC, 8 PCMA/G.711a, 9 G.722, 10-11 L16,
12 QCELP, 13 CN, 14 MPA, 15 G.728, 16-17 DVI4, 18 G.729), which is what cameras send their
microphones as; video is 26 and up or dynamic (96-127). Dynamic payload types cannot be
told apart without the SDP, so they are not reported here (the RTSP/SDP path covers them).
Never raises. :class:`RtpParser` is the registered deep parser: it looks at UDP payloads on
ports no other parser claims (``udp_other``), records the codec per direction, and names the
flow ``rtp`` or ``rtcp`` (netwatch's names: Zeek has no RTP analyzer) from the flow's own
packets, so the name does not depend on which capture worker saw the RTSP SETUP.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from netwatch.deep.base import Context, DeepParser, Verdict, service

if TYPE_CHECKING:
    from netwatch.flow.table import Flow

AUDIO_PAYLOAD_TYPES = {
    0: "PCMU", 3: "GSM", 4: "G723", 5: "DVI4", 6: "DVI4", 7: "LPC", 8: "PCMA", 9: "G722",
    10: "L16", 11: "L16", 12: "QCELP", 13: "CN", 14: "MPA", 15: "G728", 16: "DVI4",
    17: "DVI4", 18: "G729",
}  # fmt: skip
_RTP_HEADER = 12
MAX_SEQ_STEP = 8  # a few lost or reordered packets between the two looked at
MAX_RTCP_PARTS = 8
_RTCP_TYPES = (192, 223)  # the RTCP packet-type range (RFC 5761 section 4)
_RTCP_FIRST_TYPES = frozenset(range(200, 205))  # SR, RR, SDES, BYE, APP
_RTCP_AS_RTP_TYPES = frozenset(range(72, 77))  # RTCP 200-204 read with the marker bit off
#: ``flow.app`` keys of the first RTP header seen per direction, by is_orig.
_STATE = ("_rtp_r", "_rtp_o")


def rtp_audio_codec(payload: bytes) -> str | None:
    """The static audio codec of an RTP packet (``"PCMU"``, ...), or None."""
    if len(payload) <= _RTP_HEADER or payload[0] >> 6 != 2:
        return None
    csrc = (payload[0] & 0x0F) * 4
    if len(payload) <= _RTP_HEADER + csrc:
        return None
    return AUDIO_PAYLOAD_TYPES.get(payload[1] & 0x7F)


class RtpHead(NamedTuple):
    """The header fields that tie an RTP packet to the stream it belongs to."""

    ssrc: int
    seq: int


def rtp_head(payload: bytes) -> RtpHead | None:
    """SSRC and sequence number of what looks like an RTP packet (version 2, a payload type
    outside the RTCP range, room for the CSRC list and some payload), else None."""
    if len(payload) <= _RTP_HEADER or payload[0] >> 6 != 2:
        return None
    if (payload[1] & 0x7F) in _RTCP_AS_RTP_TYPES:
        return None
    if len(payload) <= _RTP_HEADER + (payload[0] & 0x0F) * 4:
        return None
    return RtpHead(int.from_bytes(payload[8:12], "big"), int.from_bytes(payload[2:4], "big"))


def is_rtcp(payload: bytes) -> bool:
    """A (compound) RTCP packet: every part version 2 with an RTCP packet type and a length
    that lands exactly on the end of the datagram; the first one an SR, RR, SDES, BYE or APP
    (RFC 3550 section 6)."""
    if len(payload) < 8 or payload[1] not in _RTCP_FIRST_TYPES:
        return False
    off = 0
    for _ in range(MAX_RTCP_PARTS):
        if off == len(payload):
            return True
        if len(payload) - off < 4 or payload[off] >> 6 != 2:
            return False
        if not _RTCP_TYPES[0] <= payload[off + 1] <= _RTCP_TYPES[1]:
            return False
        off += (int.from_bytes(payload[off + 2 : off + 4], "big") + 1) * 4
        if off > len(payload):
            return False
    return off == len(payload)


class RtpParser(DeepParser):
    """RTP and RTCP on unclaimed UDP: ``rtp_audio_o``/``_r`` for a static audio codec, and the
    service ``rtp`` (two packets of one stream in a direction: same SSRC, the sequence number
    a little further on) or ``rtcp`` (one well-formed RTCP packet). Zeek has no RTP analyzer:
    these names are netwatch's."""

    udp_other = True

    def udp(
        self, ctx: Context, flow: Flow, is_orig: bool, data: bytes, ts: float
    ) -> Verdict | None:
        codec = rtp_audio_codec(data)
        if codec is not None:
            flow.app_set("rtp_audio_o" if is_orig else "rtp_audio_r", codec)
        if is_rtcp(data):
            ctx.count("rtcp")
            service(flow, "rtcp")
            return Verdict.DONE
        head = rtp_head(data)
        if head is None:
            return None
        key = _STATE[is_orig]
        previous = flow.app.pop(key, None) if flow.app is not None else None
        if previous is None:
            flow.app_set(key, head)
            return Verdict.MORE  # one more packet tells whether it is a stream
        step = (head.seq - previous.seq) % 65536
        if head.ssrc == previous.ssrc and 0 < step <= MAX_SEQ_STEP:
            ctx.count("rtp")
            service(flow, "rtp")
        return Verdict.DONE
