"""Types of the compiled core (netwatch/_core.c); see netwatch.core for the Python side."""

import mmap

RECORD_SIZE: int
MAX_CAPLEN: int

def walk_pcap(
    buffer: bytes | bytearray | mmap.mmap,
    start: int,
    end: int,
    little: bool,
    ethernet: bool,
    limit: int,
    /,
) -> tuple[bytearray, int, int, int]: ...
