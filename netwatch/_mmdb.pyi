"""Types of the compiled MaxMind DB search-tree walk, the two-file GeoIP lookup, the
address-space pieces and the per-address answer cache (netwatch/_mmdb.c); see
netwatch.enrich.geo and netwatch.enrich.addrclass."""

import mmap
from collections.abc import Callable
from typing import Generic, TypeVar, final

_T = TypeVar("_T")

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
        fill: Callable[[int], object] | None = None,
        block_size: int = 0,
        /,
    ) -> None: ...
    def find(self, address: bytes, /) -> tuple[int | None, int]: ...
    def offset(self, address: bytes, /) -> int: ...
    def close(self) -> None: ...

@final
class Pair(Generic[_T]):
    def __init__(
        self,
        first: Tree,
        second: Tree,
        answers: dict[tuple[int, ...], _T],
        missing: Callable[[tuple[int, ...], bytes], _T],
        failed: Callable[[bytes], _T],
        /,
    ) -> None: ...
    def lookup(self, address: bytes, /) -> _T: ...

@final
class Pieces(Generic[_T]):
    def __init__(
        self, starts4: bytes, values4: tuple[_T, ...], starts16: bytes, values16: tuple[_T, ...], /
    ) -> None: ...
    def get(self, address: bytes, /) -> _T: ...

@final
class AddressCache(Generic[_T]):
    fetch4: Callable[[bytes], _T]
    fetch6: Callable[[bytes], _T]
    @property
    def lookups(self) -> int: ...
    @property
    def hits(self) -> int: ...
    @property
    def misses(self) -> int: ...
    @property
    def skipped(self) -> int: ...
    @property
    def evictions(self) -> int: ...
    def __init__(
        self,
        is_local: Callable[[bytes], object],
        fetch4: Callable[[bytes], _T],
        fetch6: Callable[[bytes], _T],
        none: _T,
        max_entries: int,
        /,
    ) -> None: ...
    def lookup(self, address: bytes, /) -> _T: ...
    def __len__(self) -> int: ...
