"""Deep parsers (dpkt and friends) for the few packets that need them: DNS, TLS, HTTP, RTSP."""
