"""netwatch: a passive IP-camera traffic monitor for switch mirror (SPAN) ports.

The offline pipeline is: capture file -> decode (struct fast path) -> bidirectional
flow table (Zeek conn.log semantics) -> enrichment (GeoIP, names, MAC vendor) -> flow log.
"""

__version__ = "0.1.0"
