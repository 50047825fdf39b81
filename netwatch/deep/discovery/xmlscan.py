"""Bounded, DTD-free extraction of leaf-element text from small XML messages (SADP, WS-Discovery).

Why regular expressions rather than an XML parser: the stdlib parsers expand entities declared
in an internal DTD (expat >= 2.4 only caps the amplification), and the C ``ElementTree``
parser exposes no hook to forbid entity declarations (defusedxml's approach needs the pure
Python parser's ``.parser``); defusedxml is not a dependency. Both messages are flat lists of
leaf elements, so all that is needed is "the text of element X". Here no DTD is ever read:

- a message that contains ``<!DOCTYPE`` or ``<!ENTITY`` is refused (like defusedxml's
  ``forbid_dtd``), and no entity other than the five predefined ones and numeric character
  references is ever replaced (``&foo;`` stays literal text);
- at most ``MAX_PAYLOAD_BYTES`` (64 KiB) are read, decoded as UTF-8 with replacement, so
  nothing raises;
- every pattern is linear: an element's attributes and text are ``[^<>]*`` / ``[^<]*`` runs
  that stop at the next ``<``, so no input can make a search backtrack.

A message cut by snaplen still yields the elements before the cut (a tree parser would reject
the whole document).

Known limits:
- Namespace prefixes are ignored (``d:Types`` and ``Types`` are the same element); element
  names are matched case-sensitively, as XML requires.
- CDATA sections, comments and nesting are not interpreted: an element whose text holds
  markup gives no value, and a matching element inside a comment is read like any other.
"""

from __future__ import annotations

import re
from functools import lru_cache

from netwatch.deep.discovery.identity import MAX_PAYLOAD_BYTES
from netwatch.lazyre import lazy

MAX_ELEMENTS = 256  # leaf elements examined by ``leaves``

_PREFIX = r"(?:[A-Za-z_][\w.-]{0,63}:)?"


_dtd = lazy(r"<!(?:DOCTYPE|ENTITY)", re.IGNORECASE)


_leaf = lazy(rf"<{_PREFIX}([A-Za-z_][\w.-]{{0,63}})(?:\s[^<>]*)?>([^<]*)</{_PREFIX}\1\s*>")


_reference_re = lazy(r"&(#x[0-9A-Fa-f]{1,6}|#[0-9]{1,7}|lt|gt|amp|quot|apos);")


_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"', "apos": "'"}


def decode_document(payload: bytes) -> str | None:
    """The first 64 KiB as text, or None if the message carries a DTD (entities refused)."""
    text = payload[:MAX_PAYLOAD_BYTES].decode("utf-8", "replace").lstrip("\ufeff \t\r\n")
    return None if _dtd().search(text) else text


def unescape(text: str) -> str:
    """Replace the predefined XML entities and character references; nothing else."""
    return _reference_re().sub(_reference, text) if "&" in text else text


def _reference(match: re.Match[str]) -> str:
    name = match.group(1)
    if name in _NAMED:
        return _NAMED[name]
    code = int(name[2:], 16) if name[1] == "x" else int(name[1:])
    if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return match.group()
    return chr(code)


def element_text(document: str, name: str) -> str | None:
    """Unescaped text of the first leaf element ``name`` (any namespace prefix), or None."""
    match = _element_pattern(name).search(document)
    return unescape(match.group(1)) if match else None


def leaves(document: str) -> list[tuple[str, str]]:
    """(local name, unescaped text) of the leaf elements in document order, bounded."""
    found: list[tuple[str, str]] = []
    for match in _leaf().finditer(document):
        found.append((match.group(1), unescape(match.group(2))))
        if len(found) >= MAX_ELEMENTS:
            break
    return found


@lru_cache(maxsize=64)
def _element_pattern(name: str) -> re.Pattern[str]:
    local = re.escape(name)
    return re.compile(rf"<{_PREFIX}{local}(?:\s[^<>]*)?>([^<]*)</{_PREFIX}{local}\s*>")
