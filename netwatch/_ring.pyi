"""Types of the compiled ring conversion (netwatch/_ring.c); see netwatch.capture.afpacket."""

import mmap

def block_records(
    ring: bytes | bytearray | mmap.mmap, base: int, size: int, /
) -> tuple[bytes, int, float]: ...
