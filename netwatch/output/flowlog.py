"""The flow log: one JSON object per line, Zeek conn.log field names plus enrichment.

Shaped for log shippers (Vector, Fluent Bit, Filebeat): UTF-8, compact separators, one
record per ``\\n``-terminated line, keys in a stable order. ``reopen()`` supports
logrotate-style rotation. The daemon appends; ``replay`` starts the file afresh
(``truncate=True``). Writes are buffered; ``close()`` flushes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


class JsonLinesWriter:
    """Appends JSON records to a file (or a given text stream), one per line."""

    def __init__(
        self, path: Path | None = None, stream: IO[str] | None = None, *, truncate: bool = False
    ) -> None:
        if (path is None) == (stream is None):
            raise ValueError("give exactly one of path or stream")
        self.path = path
        self._mode = "w" if truncate else "a"
        self._stream = stream if stream is not None else self._open()
        self.records = 0

    def _open(self) -> IO[str]:
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        stream = self.path.open(self._mode, encoding="utf-8", buffering=1 << 16)
        self._mode = "a"  # a reopen after rotation appends to the new file
        return stream

    def write(self, record: dict[str, Any]) -> None:
        """Append one record."""
        self._stream.write(_dumps(record))
        self._stream.write("\n")
        self.records += 1

    def reopen(self) -> None:
        """Close and reopen the file (after logrotate moved it)."""
        if self.path is not None:
            self._stream.close()
            self._stream = self._open()

    def close(self) -> None:
        """Flush and close (a given stream is only flushed)."""
        if self.path is not None:
            self._stream.close()
        else:
            self._stream.flush()
