"""Zeek's ``likely_server_ports`` and its rule for orienting a flow seen mid-stream.

When the first packet of a flow is not a TCP SYN (the sensor started late, the SYN was lost
before the mirror port, a lone SYN-ACK, or any UDP datagram), the sender of that packet is
not necessarily the client. Zeek then looks at the ports: if the first sender's port is a
port servers are likely to use and the receiver's is not, the roles are flipped (the
receiver becomes the originator) and ``^`` is recorded in ``history``. :func:`flip_first`
is that decision; :class:`netwatch.flow.table.FlowTable` calls it once per new flow, never
per packet.

Source of the rule: zeek/zeek ``src/packet_analysis/protocol/tcp/TCP.cc`` and
``src/packet_analysis/protocol/udp/UDP.cc`` (``WantConnection``): for TCP, a first packet
that is not a pure SYN is flipped when its source port is a likely server port and its
destination port is not; when both are, only a non-SYN packet whose source port is the
lower one is flipped (a SYN-ACK is then left alone, to keep stealth scans readable). For
UDP, the source port must be a likely server port and the destination port not. Zeek's
``udp-broadcast`` test keeps a datagram sent to a broadcast address unflipped; netwatch does
the same for the limited broadcast and multicast destinations.

Source of the ports: the ``redef likely_server_ports += {...}`` lines of Zeek's base
scripts (listed in the ``likely_server_ports`` entry of Zeek's ``init-bare.zeek``
reference), with the port sets those scripts define: base/frameworks/tunnels (AYIYA 5072,
Teredo 3544, GTPv1 2123/2152, VXLAN 4789), dce-rpc, dhcp (67/udp only: 68 is the client),
dnp3, dns, ftp, ssl (and DTLS 443/udp), http, imap, irc, krb, modbus, ntp, radius, rdp,
sip, snmp, smb, smtp, socks, ssh, syslog, xmpp, mqtt, ldap, mysql, postgresql, redis.
Ports are per transport, as in Zeek (``53/udp`` is not ``53/tcp``). Known limits: the
set is Zeek's default with all base scripts loaded (``zeek -b`` runs load fewer analyzers,
so a few of their baselines keep the first sender); ports only suggest a role, so a client
whose ephemeral port happens to be in the set is oriented wrongly, as in Zeek.
"""

from __future__ import annotations

from typing import Final

PROTO_TCP: Final = 6
PROTO_UDP: Final = 17

SYN: Final = 0x02
ACK: Final = 0x10

LIKELY_SERVER_TCP: Final[frozenset[int]] = frozenset(
    {
        21,  # ftp
        22,  # ssh
        25,  # smtp
        53,  # dns
        80,  # http
        81,  # http
        88,  # krb
        135,  # dce-rpc
        139,  # smb
        143,  # imap
        389,  # ldap
        443,  # ssl
        445,  # smb
        502,  # modbus
        563,  # ssl (nntps)
        585,  # ssl (imap4-ssl)
        587,  # smtp (submission)
        614,  # ssl (sshell)
        631,  # http (ipp)
        636,  # ssl (ldaps)
        989,  # ssl (ftps-data)
        990,  # ssl (ftps)
        992,  # ssl (telnets)
        993,  # ssl (imaps)
        995,  # ssl (pop3s)
        1080,  # http, socks
        1434,  # mysql
        1883,  # mqtt
        2811,  # ftp (gridftp)
        3128,  # http (proxy)
        3268,  # ldap (global catalog)
        3306,  # mysql
        3389,  # rdp
        5222,  # xmpp
        5223,  # ssl (xmpp over tls)
        5269,  # xmpp (server to server)
        5432,  # postgresql
        6379,  # redis
        6666,  # irc
        6667,  # irc
        6668,  # irc
        6669,  # irc
        8000,  # http
        8080,  # http
        8888,  # http
        20000,  # dnp3
    }
)

LIKELY_SERVER_UDP: Final[frozenset[int]] = frozenset(
    {
        53,  # dns
        67,  # dhcp server (68, the client's port, is not one)
        88,  # krb
        123,  # ntp
        137,  # dns (netbios name service)
        161,  # snmp
        162,  # snmp (traps)
        389,  # ldap
        443,  # dtls
        514,  # syslog
        1812,  # radius
        2123,  # gtpv1 control
        2152,  # gtpv1 user plane
        3544,  # teredo
        4789,  # vxlan
        5060,  # sip
        5072,  # ayiya
        5353,  # dns (mdns)
        5355,  # dns (llmnr)
        20000,  # dnp3
    }
)

#: Server ports of camera clouds and P2P platforms that Zeek does not know. They do NOT
#: orient flows (the flow record keeps Zeek's semantics); ``inbound_access`` reads them so
#: that a cloud server's datagram seen first (the sensor joined mid-session) is not taken
#: for the internet reaching the camera. Sources: 3478 STUN (RFC 8489 default port; the
#: D-Link DCS-8000LH capture in the corpus, camera-real/shf_dlink-dcs8000lh_*); 32100 the
#: CS2 Network "PPPP" P2P servers (camera-real/shf_xiaomi-cam_* in the corpus MANIFEST).
CAMERA_CLOUD_UDP: Final[frozenset[int]] = frozenset({3478, 32100})

_LIMITED_BROADCAST: Final = b"\xff\xff\xff\xff"


def _group_destination(dst: bytes) -> bool:
    """True for the limited broadcast and multicast addresses (IPv4 224/4, IPv6 ff00::/8)."""
    if len(dst) == 4:
        return dst == _LIMITED_BROADCAST or 224 <= dst[0] < 240
    return len(dst) == 16 and dst[0] == 0xFF


def flip_first(proto: int, sport: int, dport: int, tcp_flags: int, dst: bytes) -> bool:
    """Should a new flow whose first packet went ``sport -> dport`` be flipped (Zeek's rule)?"""
    if proto == PROTO_TCP:
        if tcp_flags & (SYN | ACK) == SYN or sport not in LIKELY_SERVER_TCP:
            return False  # a pure SYN names its client; else the source must look like a server
        if dport in LIKELY_SERVER_TCP:
            return not tcp_flags & SYN and sport < dport
        return True
    if proto == PROTO_UDP:
        return (
            sport in LIKELY_SERVER_UDP
            and dport not in LIKELY_SERVER_UDP
            and not _group_destination(dst)
        )
    return False
