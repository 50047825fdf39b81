"""Tests for netwatch.lazyre: a pattern compiled once, at its first use, with its flags."""

from __future__ import annotations

import re

import pytest

from netwatch import lazyre


def test_compiled_at_the_first_call_and_only_once(monkeypatch: pytest.MonkeyPatch) -> None:
    compiled: list[object] = []
    real = re.compile

    def counting(pattern: str, flags: int = 0) -> re.Pattern[str]:
        compiled.append(pattern)
        return real(pattern, flags)

    monkeypatch.setattr(re, "compile", counting)
    get = lazyre.lazy(r"ab+c")
    assert compiled == []  # nothing at definition (module import)
    first = get()
    assert get() is first
    assert compiled == [r"ab+c"]


def test_flags_and_bytes_patterns_as_re_compile_gives_them() -> None:
    text = lazyre.lazy(r"onvif://(\w+)", re.IGNORECASE)()
    assert text.flags & re.IGNORECASE
    match = text.match("ONVIF://Name")
    assert match is not None and match.group(1) == "Name"
    raw = lazyre.lazy(rb"[\x20-\x7e]{4,}")()
    assert raw.findall(b"\x00abcd\x01xy") == [b"abcd"]


def test_a_bad_pattern_fails_at_its_first_use_not_before() -> None:
    get = lazyre.lazy(r"(unclosed")
    with pytest.raises(re.error):
        get()
