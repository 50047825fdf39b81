"""Helpers for building synthetic network traffic in tests, demos and benchmarks.

Nothing here is used by the monitor at run time. `pcapgen` builds frames layer by layer
(Ethernet/VLAN, IPv4/IPv6, TCP/UDP/ICMP, DNS, TLS, HTTP, RTSP/SDP, RTP) and writes classic
pcap files; the capture generators under `bench/` and `pcaps/` are built on it.
"""
