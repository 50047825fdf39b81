"""Frame decoding: the struct-based fast path from link layer to the innermost IP 5-tuple."""
