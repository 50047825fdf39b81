"""Converters for single config values: numbers, durations, addresses, names, paths.

Each converter takes `(node, ctx, key_path)` and returns a typed value or raises
`ConfigError` at the node's line. Text-like values (IPs, MACs, country codes, host:port)
are read from the scalar as written, so YAML 1.1 surprises do not bite: an unquoted MAC
such as `10:22:33:44:55:56` (a base-60 integer to YAML) or the country `NO` (a boolean)
still reach the check as text. Booleans are never accepted as numbers.

Rule ids (`rule_ref`) must name a rule netwatch has: the ids of the rules registry
(`netwatch.rules.BUILTIN_RULES`) plus the sensor's own rules (`SENSOR_RULES`); they are
imported lazily, at the first check, so importing the config never imports the pipeline.
The same lazy import gives each flow rule's options class (`rule_options_types`): the
`rules:` sections of the schema are composed from the rule modules, not written here.

Secret files (`secret_file`: webhook URLs, routing keys, TLS keys) must not be readable or
writable by others (any `o` permission bit of the file they resolve to is an error naming
the `chmod` that fixes it); group bits are allowed (root:netwatch 0640 is the usual set-up).
A secret file that is itself a symlink is accepted with a warning naming its target:
Kubernetes mounts secrets as symlinks into `..data/`, so refusing them would refuse every
such deployment; the permission check applies to the target. Ownership is not checked.

Reads no config keys itself. Known limits: host names are checked for syntax only (never
resolved); files are checked to exist when loading, not for readability by the daemon user.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import os
import re
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from netwatch.config.loader import Conv, Ctx, Pattern, is_scalar, text, typed
from netwatch.lazyre import lazy

if TYPE_CHECKING:
    from yaml.nodes import Node

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Compiled at their first use (netwatch.lazyre): a start with the built-in config checks
# no value against them.
mac_re = lazy(
    r"[0-9a-f]{2}([:-])[0-9a-f]{2}(?:\1[0-9a-f]{2}){4}"
    r"|[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4}|[0-9a-f]{12}"
)
host_label_re = lazy(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
name_label_re = lazy(r"[a-z0-9_*](?:[a-z0-9_*-]*[a-z0-9_*])?")
port_rule_re = lazy(r"(?:(tcp|udp)/)?([0-9]{1,5})")
host_port_re = lazy(r"\[([^\]]*)\]:([0-9]{1,5})|([^\[\]]*):([0-9]{1,5})")
country_re = lazy(r"[A-Z]{2}")
env_name_re = lazy(r"[A-Za-z_][A-Za-z0-9_]*")
rule_id_re = lazy(r"[a-z][a-z0-9_]*")
MAX_ASN = 2**32 - 1
OTHERS_READ_WRITE = stat.S_IROTH | stat.S_IWOTH


@dataclass(frozen=True, slots=True)
class HostPort:
    """A TCP/UDP endpoint: `host` is an IP address (IPv6 without brackets) or a host name."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class PortRule:
    """An allowed destination port; `proto` None matches TCP and UDP alike."""

    port: int
    proto: str | None = None

    def matches(self, proto: str, port: int) -> bool:
        return port == self.port and self.proto in (None, proto.lower())

    def __str__(self) -> str:
        return f"{self.proto}/{self.port}" if self.proto else str(self.port)


# ---------------------------------------------------------------- typed scalars


def boolean(node: Node, ctx: Ctx, path: str) -> bool:
    value: bool = typed(node, ctx, path, ("bool",), "true or false")
    return value


def _positive(node: Node, ctx: Ctx, path: str, kind: str, positive: str) -> float:
    """A positive, finite int or float (never a boolean); ``kind``/``positive`` name the
    expected value in the type error and the range error."""
    number: int | float = typed(node, ctx, path, ("int", "float"), kind)
    value = float(number) if abs(number) < 1e300 else math.inf
    if not (math.isfinite(value) and value > 0):
        ctx.fail(node, path, f"expected {positive}, got {node.value}")
    return value


def seconds(node: Node, ctx: Ctx, path: str) -> float:
    """A duration: a positive, finite number of seconds (int or float, never a boolean)."""
    return _positive(node, ctx, path, "a number of seconds", "a positive number of seconds")


def delay(node: Node, ctx: Ctx, path: str) -> float:
    """A wait: zero (none) or a positive, finite number of seconds (never a boolean)."""
    number: int | float = typed(node, ctx, path, ("int", "float"), "a number of seconds")
    value = float(number) if abs(number) < 1e300 else math.inf
    if not (math.isfinite(value) and value >= 0):
        ctx.fail(node, path, f"expected 0 or a positive number of seconds, got {node.value}")
    return value


def factor(node: Node, ctx: Ctx, path: str) -> float:
    """A positive, finite number (int or float, never a boolean), e.g. a speed-up."""
    return _positive(node, ctx, path, "a positive number", "a positive number")


def integer(lo: int, hi: int | None = None) -> Conv:
    """An integer in lo..hi (a boolean is not an integer)."""

    def conv(node: Node, ctx: Ctx, path: str) -> int:
        value: int = typed(node, ctx, path, ("int",), "an integer")
        if value < lo or (hi is not None and value > hi):
            bounds = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
            ctx.fail(node, path, f"must be {bounds}, got {value}")
        return value

    return conv


def string(*, empty: bool = False, pattern: Pattern | None = None, what: str = "") -> Conv:
    """A YAML string; non-empty unless `empty`; matching `pattern` (described by `what`;
    a :func:`netwatch.lazyre.lazy` pattern, compiled when a value is first checked)."""

    def conv(node: Node, ctx: Ctx, path: str) -> str:
        value: str = typed(node, ctx, path, ("str",), "a string")
        if not value and not empty:
            ctx.fail(node, path, "must not be empty")
        if pattern is not None and not pattern().fullmatch(value):
            ctx.fail(node, path, f"{value!r} is not {what}")
        return value

    return conv


def choice(*options: str) -> Conv:
    """One of a fixed set of words."""

    def conv(node: Node, ctx: Ctx, path: str) -> str:
        value = text(node, ctx, path)
        if value not in options:
            ctx.fail(node, path, f"{value!r} is not one of: {', '.join(options)}")
        return value

    return conv


def from_text(parse: Callable[[str], Any]) -> Conv:
    """A converter from a text parser that raises ValueError with a user-facing message."""

    def conv(node: Node, ctx: Ctx, path: str) -> Any:
        raw = text(node, ctx, path)
        try:
            return parse(raw)
        except ValueError as exc:
            ctx.fail(node, path, str(exc))

    return conv


# ---------------------------------------------------------------- text parsers


def parse_ip(raw: str) -> IPAddress:
    try:
        return ipaddress.ip_address(raw)
    except ValueError:
        raise ValueError(f"{raw!r} is not a valid IP address") from None


def parse_cidr(raw: str) -> IPNetwork:
    try:
        return ipaddress.ip_network(raw)
    except ValueError:
        pass
    try:
        net = ipaddress.ip_network(raw, strict=False)
    except ValueError:
        raise ValueError(f"{raw!r} is not a valid IP network") from None
    raise ValueError(f"{raw!r} is not a valid IP network: host bits set (did you mean {net}?)")


def parse_mac(raw: str) -> str:
    """aa:bb:cc:dd:ee:ff, aa-bb-..., aabb.ccdd.eeff or aabbccddeeff -> 'aa:bb:cc:dd:ee:ff'."""
    low = raw.lower()
    if not mac_re().fullmatch(low):
        raise ValueError(f"{raw!r} is not a valid MAC address (expected aa:bb:cc:dd:ee:ff)")
    digits = re.sub(r"[:.-]", "", low)
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def parse_country(raw: str) -> str:
    if not country_re().fullmatch(raw):
        raise ValueError(f"{raw!r} is not an upper-case ISO 3166 alpha-2 country code (e.g. DE)")
    return raw


def parse_name_pattern(raw: str) -> str:
    """A DNS name or wildcard pattern (`*.example.com`), lower-cased, no trailing dot."""
    name = raw.lower().removesuffix(".")
    labels = name.split(".")
    if not name or len(name) > 253 or not all(name_label_re().fullmatch(x) for x in labels):
        raise ValueError(f"{raw!r} is not a DNS name or wildcard pattern such as *.example.com")
    return name


def parse_port_rule(raw: str) -> PortRule:
    match = port_rule_re().fullmatch(raw.lower())
    if not match or not 1 <= int(match[2]) <= 65535:
        raise ValueError(f"{raw!r} is not a port (1-65535) or proto/port such as udp/123")
    return PortRule(int(match[2]), match[1])


def is_hostname(host: str) -> bool:
    labels = host.split(".")
    ok = len(host) <= 253 and all(host_label_re().fullmatch(x) for x in labels)
    return ok and not labels[-1].isdigit()


def parse_host_port(raw: str) -> HostPort:
    """host:port, [IPv6]:port; the host is an IP address or a host name; port 1-65535."""
    match = host_port_re().fullmatch(raw)
    if match is None:
        raise ValueError(f"{raw!r} is not host:port (IPv6 as [::1]:9847)")
    host, port = (match[1], match[2]) if match[1] is not None else (match[3], match[4])
    if match[1] is not None and not _is_ip(host, ipaddress.IPv6Address):
        raise ValueError(f"{host!r} in {raw!r} is not a valid IPv6 address")
    if match[1] is None and ":" in host:
        raise ValueError(f"{raw!r}: write IPv6 addresses in brackets, e.g. [::1]:9847")
    if match[1] is None and not (_is_ip(host, ipaddress.IPv4Address) or is_hostname(host)):
        raise ValueError(f"{host!r} in {raw!r} is not a valid IP address or host name")
    if not 1 <= int(port) <= 65535:
        raise ValueError(f"port {port} in {raw!r} is not in 1-65535")
    return HostPort(host, int(port))


def _is_ip(host: str, kind: type[ipaddress.IPv4Address | ipaddress.IPv6Address]) -> bool:
    try:
        kind(host)
    except ValueError:
        return False
    return True


def parse_url(raw: str) -> str:
    """An http(s) URL with a host and no inline credentials."""
    parts = urlsplit(raw)
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValueError(f"{raw!r} has an invalid port") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{raw!r} is not an http:// or https:// URL")
    if parts.username or parts.password:
        raise ValueError(f"{raw!r} has inline credentials; secrets never go in the config")
    return raw


def parse_syslog_address(raw: str) -> HostPort | Path:
    """host:port for UDP/TCP, or an absolute unix socket path such as /dev/log."""
    return Path(raw) if raw.startswith("/") else parse_host_port(raw)


# ---------------------------------------------------------------- converters that need ctx


def path(*, must_exist: bool = False) -> Conv:
    """A file path, relative ones resolved against the config file's directory."""

    def conv(node: Node, ctx: Ctx, key: str) -> Path:
        raw: str = string()(node, ctx, key)
        resolved = ctx.base / raw
        where = "" if str(resolved) == raw else f" (resolved to {resolved})"
        if must_exist and not resolved.exists():
            ctx.fail(node, key, f"file {raw!r} does not exist{where}")
        if must_exist and not resolved.is_file():
            ctx.fail(node, key, f"{raw!r} is not a regular file{where}")
        return resolved

    return conv


def secret_problem(file: Path) -> str | None:
    """Why `file` (following symlinks) is unfit to hold a secret, or None.

    A file readable or writable by others is unfit; the message names the fix."""
    try:
        mode = os.stat(file).st_mode
    except OSError as exc:
        return f"cannot check secret file {file}: {exc.strerror or exc}"
    bits = mode & OTHERS_READ_WRITE
    if not bits:
        return None
    how = {
        stat.S_IROTH: "readable",
        stat.S_IWOTH: "writable",
        OTHERS_READ_WRITE: "readable and writable",
    }[bits]
    target = os.path.realpath(file)
    where = "" if target == str(file) else f" ({file} is a symlink to it)"
    import shlex  # noqa: PLC0415 - on a bad secret file only (not at every start)

    return (
        f"secret file {target} is {how} by others (mode {stat.S_IMODE(mode):04o}){where}; "
        f"fix: chmod o-rwx {shlex.quote(target)}"
    )


def symlink_note(file: Path) -> str | None:
    """A warning when `file` itself is a symlink (naming where it points), or None."""
    if not file.is_symlink():
        return None
    return f"secret file {file} is a symlink to {os.path.realpath(file)} (accepted)"


def secret_file(node: Node, ctx: Ctx, key: str) -> Path:
    """An existing file holding a secret: not readable or writable by others (see the
    module docstring); a symlink is accepted with a warning."""
    resolved: Path = path(must_exist=True)(node, ctx, key)
    problem = secret_problem(resolved)
    if problem is not None:
        ctx.fail(node, key, problem)
    note = symlink_note(resolved)
    if note is not None:
        ctx.warn(node, key, note)
    return resolved


SENSOR_RULES: tuple[str, ...] = ("alert_flood",)
"""Rule ids the sensor raises outside the rules registry (the router's summary)."""


@functools.cache
def known_rule_ids() -> tuple[str, ...]:
    """Every rule id an alert can carry: the registered flow and sensor rules, then
    `SENSOR_RULES`."""
    # lazy: no pipeline at import
    from netwatch.rules import BUILTIN_RULES, BUILTIN_SENSOR_RULES  # noqa: PLC0415

    registered = (r.id for r in (*BUILTIN_RULES, *BUILTIN_SENSOR_RULES))
    return tuple(dict.fromkeys([*registered, *SENSOR_RULES]))


@functools.cache
def rule_options_types() -> Mapping[str, type[Any]]:
    """Each flow rule's id -> its options dataclass (`Rule.options_type`: a subclass of
    `netwatch.rules.base.RuleOptions` whose fields are config keys), in registry order."""
    from netwatch.rules import BUILTIN_RULES  # noqa: PLC0415 - lazy: no pipeline at import

    return MappingProxyType({rule.id: rule.options_type for rule in BUILTIN_RULES})


def unknown_rule(value: str, known: Sequence[str]) -> str:
    """The message for a rule id that is not in ``known``, with a "did you mean"."""
    import difflib  # noqa: PLC0415 - on a bad rule id only (not at every start)

    close = difflib.get_close_matches(value, known, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"known rules: {', '.join(known)}"
    return f"unknown rule {value!r} ({hint})"


def rule_ref(node: Node, ctx: Ctx, key: str) -> str:
    """The id of a rule netwatch has (a typo gets a "did you mean")."""
    value: str = rule_id(node, ctx, key)
    known = known_rule_ids()
    if value not in known:
        ctx.fail(node, key, unknown_rule(value, known))
    return value


def group_ref(node: Node, ctx: Ctx, key: str) -> str:
    """The name of a group defined under `groups` (or the implicit 'default')."""
    name: str = string()(node, ctx, key)
    if name not in ctx.group_names:
        ctx.fail(node, key, f"unknown group {name!r} (define it under groups, or use 'default')")
    return name


def port_rule(node: Node, ctx: Ctx, key: str) -> PortRule:
    """A YAML integer (any notation) is a port for TCP and UDP; text may be proto/port."""
    if is_scalar(node) and node.tag.endswith(":int"):
        return PortRule(integer(1, 65535)(node, ctx, key))
    parsed: PortRule = from_text(parse_port_rule)(node, ctx, key)
    return parsed


ip = from_text(parse_ip)
cidr = from_text(parse_cidr)
mac = from_text(parse_mac)
country = from_text(parse_country)
name_pattern = from_text(parse_name_pattern)
host_port = from_text(parse_host_port)
url = from_text(parse_url)
syslog_address = from_text(parse_syslog_address)
asn = integer(1, MAX_ASN)
env_name = string(pattern=env_name_re, what="an environment variable name")
rule_id = string(pattern=rule_id_re, what="a rule id (lower-case letters, digits, _)")
