"""Types of the compiled MaxMind DB search-tree walk (netwatch/_mmdb.c); see netwatch.enrich.geo."""

import mmap
from typing import final

@final
class Tree:
    node_count: int
    record_size: int
    ip_version: int
    ipv4_depth: int
    def __init__(
        self,
        buffer: bytes | bytearray | mmap.mmap,
        node_count: int,
        record_size: int,
        ip_version: int,
        /,
    ) -> None: ...
    def find(self, address: bytes, /) -> tuple[int | None, int]: ...
    def offset(self, address: bytes, /) -> int: ...
    def close(self) -> None: ...
