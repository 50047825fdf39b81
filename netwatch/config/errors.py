"""The single exception type of the configuration module.

`ConfigError` names the file, the 1-based line, the dotted key path (with `[index]` for list
items, `<top>` when no key applies) and a message; `str()` is always ONE line,
`FILE:LINE: KEY.PATH: message`, so `netwatch check-config` can print it as is.
`ConfigWarning` has the same shape for a value that is accepted but worth a word (a secret
file that is a symlink); it is collected, never raised. Reads no config itself.
"""

from __future__ import annotations

from dataclasses import dataclass

TOP = "<top>"


class ConfigError(Exception):
    """A configuration file that cannot be used: unreadable, not YAML, or not valid."""

    def __init__(self, file: str, line: int, key: str, message: str) -> None:
        message = " ".join(message.split())
        super().__init__(file, line, key, message)
        self.file = file
        self.line = line
        self.key = key
        self.message = message

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.key}: {self.message}"


@dataclass(frozen=True, slots=True)
class ConfigWarning:
    """A value that is accepted but deserves a WARNING: where it is and why."""

    file: str
    line: int
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.key}: {self.message}"
