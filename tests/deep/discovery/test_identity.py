"""Tests for netwatch.deep.discovery.identity: MAC/IP/flag normalisation and bounded evidence."""

from __future__ import annotations

import pytest

from netwatch.deep.discovery.identity import (
    MAX_RAW_FIELDS,
    MAX_TEXT_CHARS,
    REDACTED,
    clean_text,
    normalize_ip,
    normalize_mac,
    parse_flag,
    raw_fields,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("44-19-B6-12-34-56", "44:19:b6:12:34:56"),
        ("44:19:b6:12:34:56", "44:19:b6:12:34:56"),
        ("4419.b612.3456", "44:19:b6:12:34:56"),
        ("4419B6123456", "44:19:b6:12:34:56"),
        (" 44:19:b6:12:34:56 ", "44:19:b6:12:34:56"),
        ("44:19-b6:12:34:56", None),
        ("44:19:b6:12:34", None),
        ("44:19:b6:12:34:5g", None),
        ("", None),
        (None, None),
        (441912, None),
    ],
)
def test_normalize_mac(value: object, expected: str | None) -> None:
    assert normalize_mac(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("192.168.1.64", "192.168.1.64"),
        ("2001:DB8::1", "2001:db8::1"),
        ("0.0.0.0", None),
        ("::", None),
        ("192.168.001.064", None),
        ("fe80::1%eth0", None),
        ("cam.local", None),
        (True, None),
    ],
)
def test_normalize_ip(value: object, expected: str | None) -> None:
    assert normalize_ip(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("False", False), ("flase", False), (True, True), (0, False), ("?", None)],
)
def test_parse_flag(value: object, expected: bool | None) -> None:
    assert parse_flag(value) is expected


def test_clean_text_strips_controls_and_bounds_length() -> None:
    assert clean_text(" a\x00b\x85c ") == "abc"
    assert clean_text("x" * 10_000) == "x" * MAX_TEXT_CHARS
    assert clean_text("\x01\x02") is None
    assert clean_text(3.5) == "3.5"
    assert clean_text(["list"]) is None


def test_raw_fields_are_bounded_redacted_and_skip_empties() -> None:
    pairs: list[tuple[str, object]] = [
        ("a", ""),
        ("Password", "hunter2"),
        ("params.Salt", "abc"),
        ("flag", False),
    ]
    pairs += [(f"k{i}", i) for i in range(100)]
    fields = raw_fields(pairs)
    assert len(fields) == MAX_RAW_FIELDS
    assert fields[:3] == (("Password", REDACTED), ("params.Salt", REDACTED), ("flag", "false"))
