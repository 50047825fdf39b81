"""Bounded JSON bodies of binary-framed discovery messages (Dahua DHIP, Xiongmai DVRIP).

``load_object`` returns the top-level JSON object or None, never raising: the body is cut at
64 KiB, trailing NULs and line ends (Xiongmai ends bodies with ``0A 00``) are dropped, bytes
are decoded as UTF-8 with replacement, and deep nesting (``RecursionError``) is treated as
invalid. ``scalars`` flattens nested objects to dotted keys for evidence, bounded.

Known limits: a body cut mid-document (snaplen) is not parsed at all; JSON arrays are not
descended into.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from netwatch.deep.discovery.identity import MAX_PAYLOAD_BYTES, MAX_RAW_FIELDS

JsonObject = dict[str, object]

_MAX_DEPTH = 4  # nesting levels flattened by ``scalars``


def load_object(body: bytes) -> JsonObject | None:
    """The JSON object in ``body``, or None if it is not one whole JSON object."""
    text = body[:MAX_PAYLOAD_BYTES].rstrip(b"\x00\r\n \t").decode("utf-8", "replace")
    if not text.lstrip().startswith("{"):
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def child(value: object, key: str) -> JsonObject | None:
    """``value[key]`` when both are JSON objects, else None."""
    if not isinstance(value, dict):
        return None
    found = value.get(key)
    return found if isinstance(found, dict) else None


def scalars(value: JsonObject, prefix: str = "", depth: int = 0) -> Iterator[tuple[str, object]]:
    """(dotted key, scalar) pairs of nested objects, depth-first, at most MAX_RAW_FIELDS * 2."""
    count = 0
    for key, item in value.items():
        if count >= MAX_RAW_FIELDS * 2:
            return
        name = f"{prefix}{key}"
        if isinstance(item, dict):
            if depth + 1 < _MAX_DEPTH:
                for pair in scalars(item, f"{name}.", depth + 1):
                    count += 1
                    yield pair
        elif isinstance(item, str | int | float | bool):
            count += 1
            yield name, item
