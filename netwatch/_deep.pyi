"""Types of the deep parsers' compiled part (netwatch/_deep.c); see netwatch.deep.tls."""

def client_hello_body(
    body: bytes, /
) -> tuple[bytes | None, tuple[int, ...], tuple[str, ...], int] | None: ...
def dns_scan(
    payload: bytes, /
) -> tuple[int, bool, str | None, int | None, int, list[tuple[str, int, str, int]]] | None: ...
def dns_message(
    payload: bytes, /
) -> tuple[bool, str | None, int, list[tuple[bytes, str, int]]] | None: ...
def payload_first(
    payload: bytes | bytearray | memoryview,
    limit: int,
    conditions: tuple[
        tuple[
            tuple[tuple[int, bytes], ...],
            tuple[tuple[int, bytes, bytes], ...],
            tuple[bytes, ...],
        ],
        ...,
    ],
    start: int,
    /,
) -> int: ...
