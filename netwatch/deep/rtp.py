"""RTP audio recognition: is this UDP payload an RTP packet carrying a static audio codec?

RFC 3550 header: version 2 in the top two bits of the first byte, the payload type in the
low seven bits of the second. RFC 3551 assigns the static payload types 0-18 to audio
codecs (0 PCMU/G.711u, 3 GSM, 4 G.723, 5-6 DVI4, 7 LPC, 8 PCMA/G.711a, 9 G.722, 10-11 L16,
12 QCELP, 13 CN, 14 MPA, 15 G.728, 16-17 DVI4, 18 G.729), which is what cameras send their
microphones as; video is 26 and up or dynamic (96-127). Dynamic payload types cannot be
told apart without the SDP, so they are not reported here (the RTSP/SDP path covers them).
Never raises.
"""

from __future__ import annotations

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
