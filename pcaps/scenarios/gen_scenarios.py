"""Generate the detection-scenario captures: one small pcap per camera behaviour.

Usage: python pcaps/scenarios/gen_scenarios.py [--out-dir DIR] [--seed N]
(default: this script's folder, seed 11; same seed, same bytes).

Every capture is zero-config: cameras are recognised by their vendor MAC prefix
(`pcapgen.HIKVISION_OUIS` / `DAHUA_OUIS`) and fall in the default group, which allows nothing
outside the site's local networks (RFC 1918, RFC 4193). Public peers are addresses from
MaxMind's test databases (../shared/corpus/maxmind/FACTS.md) except the public resolver
8.8.8.8. README.md beside this file lists each capture and the alerts netwatch should raise.

Payload bodies whose wire format is not documented (bytes on Hik-Connect TCP 8666, the EHome
fields after the REGISTER method, the Dahua P2P bodies, the upload) are synthetic placeholders
that only carry the magic of `seeds/payload_signatures.yaml`.

Reads no config. Known limits: `camera-upload.pcap` is written with a 128-byte snaplen (the
records keep the full wire length) so that 1.2 MB of upload fits a small file.
"""

from __future__ import annotations

import argparse
import random
import struct
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from netwatch.testing import pcapgen as pg
from netwatch.testing.pcapgen import DnsRecord, DnsType, Route, Trace

SEED = 11
EPOCH_US = 1_768_467_600_000_000  # 2026-01-15T09:00:00Z
MAX_FILE_BYTES = 200_000
UPLOAD_SNAPLEN = 128
MS = 1_000
SECOND = 1_000_000
OUT_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True, slots=True)
class Node:
    """A host on the mirrored site network."""

    mac: str
    ip: str
    ip6: str = ""


GATEWAY = Node("02:00:5e:10:00:01", "10.20.0.1", "fd00:20::1")
NVR = Node("02:4e:56:00:00:0a", "10.20.0.10")
HIK = Node(pg.host_mac(pg.HIKVISION_OUIS[0], 0x1A2B01), "10.20.0.11", "fd00:20::11")
DAHUA = Node(pg.host_mac(pg.DAHUA_OUIS[0], 0x5E6F03), "10.20.0.13")
RESOLVER = Node("02:00:00:00:00:53", "10.20.0.53", "fd00:20::53")
NTP = Node("02:00:00:00:01:23", "10.20.0.123")

# Mirror session endpoints for the ERSPAN capture (switch -> collector).
MIRROR_SRC = Node("02:00:00:00:e5:01", "10.99.0.1")
MIRROR_DST = Node("02:00:00:00:e5:02", "10.99.0.2")
ERSPAN_SESSION = 42
DAHUA_VLAN = 20

# Public peers (MaxMind test addresses; country per GeoIP2-Country-Test).
HIK_CONNECT_IP = "175.16.199.1"  # CN: litedev.hik-connect.com
EHOME_IP = "111.235.160.1"  # CN: EHome/ISUP server
EASY4IP_IP = "89.160.20.112"  # SE: www.easy4ipcloud.com
EZVIZ_IP6 = "2001:218::1"  # JP: dev.ys7.com AAAA
SCANNER_IP = "81.2.69.142"  # GB: reaches the camera's web server from outside
UPLOAD_IP = "216.160.83.56"  # US: receives the upload
PUBLIC_DNS = "8.8.8.8"


def wan(src: Node, peer_ip: str, vlans: Sequence[int] = ()) -> Route:
    """src -> a public address through the gateway."""
    src_ip = src.ip6 if ":" in peer_ip else src.ip
    return Route.of(src.mac, src_ip, GATEWAY.mac, peer_ip, vlans)


def lan(src: Node, dst: Node, *, v6: bool = False) -> Route:
    """src -> dst on the same segment."""
    if v6:
        return Route.of(src.mac, src.ip6, dst.mac, dst.ip6)
    return Route.of(src.mac, src.ip, dst.mac, dst.ip)


class Scene(pg.TraceBuilder):
    """One capture being built, plus the seeded randomness it draws from."""


# --- scenarios -------------------------------------------------------------------------------


def benign_site(scene: Scene) -> None:
    """Both cameras: local DNS and NTP, RTSP (video only) to the NVR and RTP video back."""
    ntp_name = [DnsRecord("ntp.cctv.internal", DnsType.A, NTP.ip, ttl=3600)]
    for k, (cam, path) in enumerate(
        ((HIK, "/Streaming/Channels/102"), (DAHUA, "/cam/realmonitor?channel=1&subtype=1"))
    ):
        t = scene.lookup(lan(cam, RESOLVER), SECOND + k * 300 * MS, "ntp.cctv.internal", ntp_name)
        ask = pg.ntp_packet(3, transmit_us=EPOCH_US + t)
        answer = pg.ntp_packet(
            4, transmit_us=EPOCH_US + t + 450, origin_us=EPOCH_US + t, receive_us=EPOCH_US + t + 400
        )
        scene.trace.add(t + 2 * MS, pg.udp_frame(lan(cam, NTP), 123, 123, ask))
        scene.trace.add(t + 3 * MS, pg.udp_frame(lan(NTP, cam), 123, 123, answer))
        url = f"rtsp://{cam.ip}:554{path}"
        s = scene.session(lan(NVR, cam), 554)
        t = scene.connect(s, 2 * SECOND + k * 400 * MS, 400)
        transport = "RTP/AVP;unicast;client_port=40000-40001"
        body = pg.sdp(cam.ip, session_id=1000 + k, video=True, audio=False)
        messages = [
            (True, pg.rtsp_request("DESCRIBE", url, 1, [("Accept", "application/sdp")])),
            (False, pg.rtsp_response(1, [("Content-Type", "application/sdp")], body)),
            (True, pg.rtsp_request("SETUP", f"{url}/trackID=1", 2, [("Transport", transport)])),
            (
                False,
                pg.rtsp_response(
                    2,
                    [("Session", "1234ABCD"), ("Transport", f"{transport};server_port=8000-8001")],
                ),
            ),
            (True, pg.rtsp_request("PLAY", url, 3, [("Session", "1234ABCD")])),
            (False, pg.rtsp_response(3, [("Session", "1234ABCD")])),
        ]
        t = scene.converse(s, t, messages, 3 * MS)
        scene.trace.add(t, s.ack(True))
        ssrc, seq = scene.rng.getrandbits(32), scene.rng.getrandbits(16)
        media = lan(cam, NVR)
        for n in range(50):  # 10 s of a 5 frames/s sub-stream
            packet = pg.rtp(seq + n, 18_000 * n, ssrc, scene.rng.randbytes(300), marker=True)
            scene.trace.add(t + 5 * MS + n * 200 * MS, pg.udp_frame(media, 8000, 40000, packet))
        end = scene.converse(
            s, t + 11 * SECOND, [(True, pg.rtsp_request("TEARDOWN", url, 4))], 3 * MS
        )
        scene.trace.add_burst(end, s.close(True), 400)


def hik_connect_registration(scene: Scene) -> None:
    """The Hikvision camera resolves litedev.hik-connect.com locally, then TCP 8666 to it."""
    record = DnsRecord("litedev.hik-connect.com", DnsType.A, HIK_CONNECT_IP, ttl=300)
    t = scene.lookup(lan(HIK, RESOLVER), SECOND, "litedev.hik-connect.com", [record])
    s = scene.session(wan(HIK, HIK_CONNECT_IP), 8666)
    rtt = 180 * MS
    t = scene.connect(s, t + 3 * MS, rtt)
    messages = [(True, scene.rng.randbytes(180)), (False, scene.rng.randbytes(200))]
    t = scene.converse(s, t, messages, rtt)
    scene.trace.add(t, s.ack(True))
    scene.trace.add_burst(t + SECOND, s.close(True), rtt)


def ehome_register_xml(serial: str, sequence: int) -> bytes:
    """An EHome 2.x plaintext REGISTER (field values are placeholders)."""
    return (
        '<?xml version="1.0" encoding="GB2312"?>\r\n<PPVSPMessage><Version>2.0</Version>'
        f"<Sequence>{sequence}</Sequence><CommandType>REQUEST</CommandType>"
        "<Method>REGISTER</Method><Command>REGISTER</Command><Params>"
        f"<DeviceID>{serial}</DeviceID><FirmwareVersion>V5.5.0</FirmwareVersion>"
        "<DevType>1</DevType><LocalIP>10.20.0.11</LocalIP><LocalPort>8000</LocalPort>"
        "</Params></PPVSPMessage>\r\n"
    ).encode("ascii")


def hik_ehome_isup(scene: Scene) -> None:
    """The Hikvision camera registers with an EHome server on UDP 7660 (twice, one answer)."""
    route, sport = wan(HIK, EHOME_IP), scene.port()
    for n in (1, 2):
        when = SECOND + (n - 1) * 5 * SECOND
        payload = ehome_register_xml("SYNTH0HIK0000001", n)
        scene.trace.add(when, pg.udp_frame(route, sport, 7660, payload, ident=n))
    reply = (
        '<?xml version="1.0" encoding="GB2312"?>\r\n<PPVSPMessage><Version>2.0</Version>'
        "<Sequence>2</Sequence><CommandType>RESPONSE</CommandType>"
        "<WhichCommand>REGISTER</WhichCommand><Status>200</Status><Description>OK</Description>"
        "</PPVSPMessage>\r\n"
    ).encode("ascii")
    scene.trace.add(6 * SECOND + 160 * MS, pg.udp_frame(route.reverse(), 7660, sport, reply))


def dahua_easy4ip(scene: Scene, vlans: Sequence[int] = ()) -> None:
    """The Dahua camera resolves www.easy4ipcloud.com at 8.8.8.8, then DHGET on UDP 8800."""
    record = DnsRecord("www.easy4ipcloud.com", DnsType.A, EASY4IP_IP, ttl=300)
    dns = wan(DAHUA, PUBLIC_DNS, vlans)
    t = scene.lookup(dns, SECOND, "www.easy4ipcloud.com", [record])
    route, sport = wan(DAHUA, EASY4IP_IP, vlans), scene.port()
    for n in range(1, 4):
        when = t + 3 * MS + (n - 1) * 10 * SECOND
        request = pg.http_request("DHGET", "/probe/p2psrv", [("CSeq", str(n))])
        scene.trace.add(when, pg.udp_frame(route, sport, 8800, request, ident=n))
        reply = pg.http_response(200, "OK", [("CSeq", str(n))])
        scene.trace.add(when + 160 * MS, pg.udp_frame(route.reverse(), 8800, sport, reply, ident=n))


def erspan_ii(inner: bytes, sequence: int, *, ident: int) -> bytes:
    """`inner` as an ERSPAN type II copy: outer Ethernet/IPv4/GRE (sequence bit, 0x88BE)."""
    gre = struct.pack(">HHI", 0x1000, 0x88BE, sequence)
    header = struct.pack(">HHI", (1 << 12) | DAHUA_VLAN, ERSPAN_SESSION & 0x3FF, 0)
    src, dst = pg.ip_bytes(MIRROR_SRC.ip), pg.ip_bytes(MIRROR_DST.ip)
    packet = pg.ipv4(src, dst, 47, gre + header + inner, ident=ident)
    return pg.ethernet(
        pg.mac_bytes(MIRROR_DST.mac), pg.mac_bytes(MIRROR_SRC.mac), pg.ETH_P_IPV4, packet
    )


def dahua_erspan_vlan(scene: Scene) -> None:
    """dahua_easy4ip on VLAN 20, every frame mirrored as ERSPAN type II."""
    inner = Scene(scene.rng)
    dahua_easy4ip(inner, (DAHUA_VLAN,))
    for seq, (ts, frame) in enumerate(inner.trace.records()):
        scene.trace.add(ts, erspan_ii(frame, seq, ident=seq + 1))


def hik_ipv6_cloud(scene: Scene) -> None:
    """The Hikvision camera asks the site resolver (IPv6) for dev.ys7.com AAAA, then TLS."""
    record = DnsRecord("dev.ys7.com", DnsType.AAAA, EZVIZ_IP6, ttl=300)
    t = scene.lookup(lan(HIK, RESOLVER, v6=True), SECOND, "dev.ys7.com", [record])
    s = scene.session(wan(HIK, EZVIZ_IP6), 443)
    rtt, rng = 210 * MS, scene.rng
    t = scene.connect(s, t + 3 * MS, rtt)
    hello = pg.tls_client_hello(
        "dev.ys7.com", client_random=rng.randbytes(32), session_id=rng.randbytes(32)
    )
    server = pg.tls_server_hello(server_random=rng.randbytes(32), session_id=rng.randbytes(32))
    server += pg.tls_application_data(rng.randbytes(2400))
    messages = [
        (True, hello),
        (False, server),
        (True, pg.tls_application_data(rng.randbytes(320))),
        (False, pg.tls_application_data(rng.randbytes(900))),
    ]
    t = scene.converse(s, t, messages, rtt)
    scene.trace.add(t, s.ack(True))
    scene.trace.add_burst(t + SECOND, s.close(True), rtt)


def camera_exposed(scene: Scene) -> None:
    """A public host gets the camera's web page (App-webs), then SYNs port 23 unanswered."""
    route = Route.of(GATEWAY.mac, SCANNER_IP, HIK.mac, HIK.ip)
    s = scene.session(route, 80)
    t = scene.connect(s, SECOND, 400)
    request = pg.http_request("GET", "/", [("Host", "203.0.113.10"), ("Accept", "*/*")])
    body = b"<!DOCTYPE html>\n<html><head><title></title></head><body></body></html>\n"
    response = pg.http_response(
        200,
        "OK",
        [("Server", "App-webs/"), ("Content-Type", "text/html")],
        body,
        version="HTTP/1.0",
    )
    t = scene.converse(s, t + 70 * MS, [(True, request), (False, response)], 2 * MS)
    scene.trace.add_burst(t, s.close(False), 70 * MS)
    scan = scene.session(route, 23)
    syn = scan.handshake()[0]
    for k in range(3):  # the original SYN and two retransmissions
        scene.trace.add(5 * SECOND + k * SECOND * (1 << k), syn)


def camera_upload(scene: Scene) -> None:
    """The Dahua camera sends 1,000 x 1,200-byte UDP datagrams over 60 s to a public peer."""
    route, sport, dport = wan(DAHUA, UPLOAD_IP), scene.port(), 51000 + scene.rng.randrange(1000)
    for n in range(1000):
        payload = scene.rng.randbytes(1200)
        scene.trace.add(SECOND + n * 60 * MS, pg.udp_frame(route, sport, dport, payload, ident=n))


@dataclass(frozen=True, slots=True)
class Scenario:
    """One capture: its file name, builder and snaplen."""

    name: str
    build: Callable[[Scene], None]
    snaplen: int = 262_144


SCENARIOS = (
    Scenario("benign-site.pcap", benign_site),
    Scenario("hik-connect-registration.pcap", hik_connect_registration),
    Scenario("hik-ehome-isup.pcap", hik_ehome_isup),
    Scenario("dahua-easy4ip.pcap", dahua_easy4ip),
    Scenario("dahua-erspan-vlan.pcap", dahua_erspan_vlan),
    Scenario("hik-ipv6-cloud.pcap", hik_ipv6_cloud),
    Scenario("camera-exposed.pcap", camera_exposed),
    Scenario("camera-upload.pcap", camera_upload, UPLOAD_SNAPLEN),
)


def write_all(out_dir: Path, seed: int = SEED) -> dict[str, int]:
    """Write every scenario capture into `out_dir`; returns file sizes by name.

    Each scenario draws from its own generator seeded with (seed, index), so changing one
    scenario leaves the others' bytes alone.
    """
    sizes: dict[str, int] = {}
    out_dir.mkdir(parents=True, exist_ok=True)
    for index, scenario in enumerate(SCENARIOS):
        scene = Scene(random.Random(seed * 1000 + index))
        scenario.build(scene)
        shifted = Trace()
        for ts, frame in scene.trace.records():
            shifted.add(EPOCH_US + ts, frame)
        path = out_dir / scenario.name
        shifted.write(path, snaplen=scenario.snaplen)
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise RuntimeError(f"{path} is {size} bytes, over the {MAX_FILE_BYTES}-byte budget")
        sizes[scenario.name] = size
    return sizes


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit code."""
    parser = argparse.ArgumentParser(description="Write the synthetic detection-scenario captures.")
    parser.add_argument("--out-dir", type=Path, default=OUT_DIR, help="output folder")
    parser.add_argument("--seed", type=int, default=SEED, help=f"random seed (default {SEED})")
    args = parser.parse_args(argv)
    for name, size in write_all(args.out_dir, args.seed).items():
        print(f"wrote {args.out_dir / name}: {size} bytes (synthetic, seed {args.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
