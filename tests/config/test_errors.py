"""ConfigError: one-line FILE:LINE: KEY.PATH: message, with attributes, picklable."""

from __future__ import annotations

import pickle

from netwatch.config import ConfigError


def test_str_is_file_line_key_message() -> None:
    err = ConfigError("/etc/netwatch.yaml", 12, "site.local_nets[1]", "bad network")
    assert str(err) == "/etc/netwatch.yaml:12: site.local_nets[1]: bad network"
    assert (err.file, err.line, err.key, err.message) == (
        "/etc/netwatch.yaml",
        12,
        "site.local_nets[1]",
        "bad network",
    )


def test_message_is_flattened_to_one_line() -> None:
    err = ConfigError("f", 1, "<top>", "first\n  second\tthird")
    assert str(err) == "f:1: <top>: first second third"
    assert "\n" not in str(err)


def test_survives_pickling() -> None:
    err = pickle.loads(pickle.dumps(ConfigError("f", 3, "a.b", "m")))
    assert isinstance(err, ConfigError)
    assert str(err) == "f:3: a.b: m"
