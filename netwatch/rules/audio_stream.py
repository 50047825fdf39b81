"""``audio_stream``: a camera offers audio (an RTSP session whose SDP has ``m=audio``).

Fires once per camera and peer when an RTSP exchange with the camera describes an audio
track: the camera has a microphone and serves its sound to whoever pulls the stream,
which in a meeting room matters as much as the picture. Evidence: the media types in the
SDP, the RTSP server banner, who pulled it. Audio RTP without RTSP signalling is not yet
recognised. Known false positives: cameras whose SDP lists an audio track with the
microphone disabled; check the device and set ``audio`` off in its configuration.
"""

from __future__ import annotations

from collections.abc import Iterator

from netwatch.alerts.model import Alert, Direction, Severity
from netwatch.detect.facts import FlowFacts
from netwatch.rules.base import Rule


class AudioStream(Rule):
    """A camera offers an audio track over RTSP."""

    def on_flow_end(self, facts: FlowFacts) -> Iterator[Alert]:
        media = tuple(facts.app.get("rtsp_media", ()))
        if "audio" not in media:
            return
        severity = Severity.MEDIUM if facts.direction is Direction.LOCAL else Severity.HIGH
        yield facts.alert(
            self.id,
            severity,
            f"{facts.device.name} offers audio over RTSP to "
            f"{facts.record['id.orig_h' if not facts.device_is_orig else 'id.resp_h']}",
            {"sdp_media": list(media), "rtsp_server": facts.app.get("server")},
        )
