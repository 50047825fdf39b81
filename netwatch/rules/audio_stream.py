"""``audio_stream``: a camera offers or sends audio (SDP ``m=audio``, or audio RTP).

Fires once per camera and peer when an RTSP exchange with the camera describes an audio
track, or when the camera sends RTP with a static audio payload type (G.711 and friends,
see :mod:`netwatch.deep.rtp`): the camera has a microphone and serves its sound, which
in a meeting room matters as much as the picture. Evidence: the media types in the SDP,
the RTP audio codec, the RTSP server banner. Dynamic-payload-type audio is recognised only
through its SDP. Known false positives: cameras whose SDP lists an audio track with the
microphone disabled; check the device and set ``audio`` off in its configuration.
Cameras whose audio goes to the site's own NVR on purpose: switch the rule off for their
group (``groups.<name>.rules.audio_stream: off``) or lower it (``severity: low``).

Options (``rules.audio_stream``, ``groups.<name>.rules.audio_stream``):
``enabled`` and ``severity`` only (``off`` switches the rule off; a severity replaces
the rule's own).
"""

from __future__ import annotations

from collections.abc import Iterator

from netwatch.alerts.model import Direction, RuleAlert, Severity
from netwatch.detect.facts import FlowFacts
from netwatch.rules.base import Rule


class AudioStream(Rule):
    """A camera offers an audio track over RTSP."""

    needs_app = True  # its first check

    def on_flow_end(self, facts: FlowFacts) -> Iterator[RuleAlert]:
        media = tuple(facts.app.get("rtsp_media", ()))
        codec = facts.app.get("rtp_audio_o" if facts.device_is_orig else "rtp_audio_r")
        if "audio" not in media and codec is None:
            return
        severity = Severity.MEDIUM if facts.direction is Direction.LOCAL else Severity.HIGH
        peer = facts.record["id.resp_h" if facts.device_is_orig else "id.orig_h"]
        how = f"sends {codec} audio (RTP)" if codec else "offers audio over RTSP"
        yield facts.finding(
            self.id,
            severity,
            f"{facts.device.name} {how} to {peer}",
            {
                "sdp_media": list(media),
                "rtp_audio_codec": codec,
                "rtsp_server": facts.app.get("server"),
            },
        )
