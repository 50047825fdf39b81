"""Deep parsers (dpkt and friends) for the few packets that need them: DNS, TLS, QUIC, HTTP,
RTSP, RTP audio, camera discovery, and the service names of Zeek's analyzers (SSH, NTP,
NetBIOS name service, SIP, SNMP, DTLS, SMB, FTP/SMTP/IMAP and their switch to TLS) and of
protocols Zeek has no analyzer for (STUN, MQTT, SSDP, RTSP and the RTP/RTCP channels it sets
up).

Each parser module defines one registered :class:`~netwatch.deep.base.DeepParser` that says
which payloads it claims (ports, first-bytes magic, or unclaimed UDP);
:data:`BUILTIN_PARSERS` is the explicit set the flow inspector dispatches to. A test imports
every module of this package and fails on one that defines a parser missing from it (it
would never run), or that defines none and is not in :data:`HELPER_MODULES`.
Reads no configuration.
"""

from __future__ import annotations

from netwatch.deep.base import PARSERS, DeepParser
from netwatch.deep.dhcp import DhcpParser
from netwatch.deep.discovery import DiscoveryParser
from netwatch.deep.dns import DnsParser
from netwatch.deep.dtls import DtlsParser
from netwatch.deep.gtp import GtpParser
from netwatch.deep.http import HttpParser
from netwatch.deep.kalay import KalayParser
from netwatch.deep.mqtt import MqttParser
from netwatch.deep.netbios import NetbiosParser
from netwatch.deep.ntp import NtpParser
from netwatch.deep.pppp import PpppParser
from netwatch.deep.quic import QuicParser
from netwatch.deep.rtp import RtpParser
from netwatch.deep.rtsp import RtspParser
from netwatch.deep.sip import SipParser
from netwatch.deep.smb import SmbParser
from netwatch.deep.snmp import SnmpParser
from netwatch.deep.ssdp import SsdpParser
from netwatch.deep.ssh import SshParser
from netwatch.deep.starttls import StarttlsParser
from netwatch.deep.stun import StunParser
from netwatch.deep.tls import TlsParser

BUILTIN_PARSERS: tuple[type[DeepParser], ...] = (
    DnsParser,
    DiscoveryParser,
    TlsParser,
    HttpParser,
    RtspParser,
    RtpParser,
    DhcpParser,
    SsdpParser,
    PpppParser,
    KalayParser,
    QuicParser,
    StarttlsParser,
    SshParser,
    NtpParser,
    NetbiosParser,
    GtpParser,
    StunParser,
    MqttParser,
    SipParser,
    SnmpParser,
    DtlsParser,
    SmbParser,
)

#: Modules of this package that define no parser (the walk test allows exactly these).
HELPER_MODULES = frozenset({"", "base", "dnsname", "mdns", "upnp"})

__all__ = ["BUILTIN_PARSERS", "HELPER_MODULES", "PARSERS", "DeepParser"]
