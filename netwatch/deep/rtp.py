"""RTP audio recognition: is this UDP payload an RTP packet carrying a static audio codec?

RFC 3550 header: version 2 in the top two bits of the first byte, the payload type in the
low seven bits of the second. RFC 3551 assigns the static payload types 0-18 to audio
codecs (0 PCMU/G.711u, 3 GSM, 4 G.723, 5-6 DVI4, 7 LPC, 8 PCMA/G.711a, 9 G.722, 10-11 L16,
12 QCELP, 13 CN, 14 MPA, 15 G.728, 16-17 DVI4, 18 G.729), which is what cameras send their
microphones as; video is 26 and up or dynamic (96-127). Dynamic payload types cannot be
told apart without the SDP, so they are not reported here (the RTSP/SDP path covers them).
Never raises. :class:`RtpParser` is the registered deep parser: it looks at UDP payloads on
ports no other parser claims (``udp_other``) and records the codec per direction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from netwatch.deep.base import Context, DeepParser

if TYPE_CHECKING:
    from netwatch.flow.table import Flow

AUDIO_PAYLOAD_TYPES = {
    0: "PCMU", 3: "GSM", 4: "G723", 5: "DVI4", 6: "DVI4", 7: "LPC", 8: "PCMA", 9: "G722",
    10: "L16", 11: "L16", 12: "QCELP", 13: "CN", 14: "MPA", 15: "G728", 16: "DVI4",
    17: "DVI4", 18: "G729",
}  # fmt: skip
_RTP_HEADER = 12


def rtp_audio_codec(payload: bytes) -> str | None:
    """The static audio codec of an RTP packet (``"PCMU"``, ...), or None."""
    if len(payload) <= _RTP_HEADER or payload[0] >> 6 != 2:
        return None
    csrc = (payload[0] & 0x0F) * 4
    if len(payload) <= _RTP_HEADER + csrc:
        return None
    return AUDIO_PAYLOAD_TYPES.get(payload[1] & 0x7F)


class RtpParser(DeepParser):
    """A UDP payload that is RTP with a static audio codec: ``rtp_audio_o``/``_r``."""

    udp_other = True

    def udp(self, ctx: Context, flow: Flow, is_orig: bool, data: bytes, ts: float) -> None:
        codec = rtp_audio_codec(data)
        if codec is not None:
            flow.app_set("rtp_audio_o" if is_orig else "rtp_audio_r", codec)
