"""The bidirectional flow table with Zeek conn.log semantics."""
