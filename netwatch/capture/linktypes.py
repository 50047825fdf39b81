"""Link-layer header types of capture files (the LINKTYPE_* registry values netwatch knows).

Reads no configuration. The capture readers yield the link type of every frame as a plain
``int``: a value missing from :class:`LinkType` is still yielded with its number, and the
decoder counts it as unsupported.

Normalisation (:func:`linktype_from_file`), applied to the link type found in a classic pcap
file header and in a pcapng Interface Description Block:

- the pcap header field carries flag bits above the link type (FCS length and the "F" bit of
  the pcap specification). Like libpcap's ``LT_LINKTYPE``, only the low 26 bits are kept;
- some writers store the platform's ``DLT_RAW`` value instead of ``LINKTYPE_RAW`` (101):
  12 on most systems, 14 on OpenBSD. Wireshark reads both as raw IP, and so do we: 12 and 14
  become :attr:`LinkType.RAW`. The two values stay in the enum (``RAW_DLT12``,
  ``RAW_DLT14``) so that they have a name, but a reader never yields them.

Known limit: on a few old systems DLT 14 meant something else (ATM RFC 1483); such files are
misread as raw IP, as they are by Wireshark.
"""

from __future__ import annotations

from enum import IntEnum

# Bits of the classic pcap "network" header field that hold the link type (libpcap LT_LINKTYPE).
_LINKTYPE_MASK = 0x03FF_FFFF


class LinkType(IntEnum):
    """Link types netwatch decodes (values from the tcpdump.org LINKTYPE registry)."""

    NULL = 0  # BSD loopback: 4-byte address family in the writer's (host) byte order
    ETHERNET = 1
    PPP = 9  # PPP (RFC 1661), with or without the HDLC-like address and control bytes
    RAW_DLT12 = 12  # DLT_RAW on most platforms; read from a file as RAW
    RAW_DLT14 = 14  # DLT_RAW on OpenBSD; read from a file as RAW
    PPP_HDLC = 50  # PPP in HDLC-like framing (RFC 1662)
    RAW = 101  # raw IPv4 or IPv6, told apart by the version nibble
    IEEE802_11 = 105  # 802.11 frames (no radio header)
    LOOP = 108  # OpenBSD loopback: 4-byte address family in network byte order
    LINUX_SLL = 113  # Linux "cooked" capture, version 1 (16-byte header)
    IEEE802_11_RADIOTAP = 127  # a radiotap header, then an 802.11 frame
    IPV4 = 228
    IPV6 = 229
    LINUX_SLL2 = 276  # Linux "cooked" capture, version 2 (20-byte header)


_RAW_ALIASES = frozenset({LinkType.RAW_DLT12, LinkType.RAW_DLT14})


def linktype_from_file(value: int) -> int:
    """Return the link type to yield for a capture file's header value (see module notes)."""
    linktype = value & _LINKTYPE_MASK
    if linktype in _RAW_ALIASES:
        return int(LinkType.RAW)
    return linktype
