"""The netwatch configuration schema: every key, its type, default and check, in one table.

Each section is a frozen dataclass; each field declares its converter (`key(conv, default)`),
and cross-field rules sit in the section's `RULES`. `Config.load(path)` validates the whole
file (unknown keys, types, addresses, durations, files that must exist, names that must be
unique, groups that must be defined, rule ids that must exist, cameras listed once, secret
files no one else may read) and raises `ConfigError` with file:line and key path;
`Config.warnings` holds what was accepted with a warning (a secret file that is a symlink).
`Config.default()` is the zero-config set-up. Relative paths resolve against the directory of
the config file. See config/netwatch.yaml for every key documented.

Rule options (top-level `rules:` and `groups.NAME.rules:`, rule id -> off | on | options)
are not written here: each rule declares its options class in its own module
(`netwatch.rules.base.RuleOptions`), and the converter asks the rules registry for them
lazily, at load time (so importing the config never imports the rules). The deprecated
`groups.NAME.<option>` keys a rule lists in `LEGACY_GROUP_KEYS` (outbound_stream's
thresholds) still load, into `groups.NAME.rules.<id>`, with a warning.

Known limits: one error is reported per run; secrets (webhook URLs, PagerDuty keys) are only
ever referenced by file or environment variable, and environment variables are not checked
at load time (`netwatch.preflight` checks them, with everything else `run` needs).
"""

# RUF009: `key(...)` returns `dataclasses.field(default=..., metadata=...)`; every default it
# carries is immutable (None, numbers, str, Path, tuples, frozen dataclasses).
# ruff: noqa: RUF009

from __future__ import annotations

import dataclasses
import string
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

from netwatch.config import values as v
from netwatch.config.errors import TOP, ConfigError, ConfigWarning
from netwatch.config.loader import (
    Conv,
    Ctx,
    OneOf,
    Rules,
    Variant,
    build,
    child,
    compose,
    describe,
    expect,
    is_mapping,
    is_null,
    is_scalar,
    items,
    join,
    line_of,
    list_of,
    mapping_of,
    optional,
    section,
    short_tag,
)
from netwatch.config.values import HostPort, IPAddress, IPNetwork, PortRule
from netwatch.lazyre import lazy

if TYPE_CHECKING:
    from yaml.nodes import Node

DEFAULT_GROUP = "default"
group_name_re = lazy(r"[A-Za-z0-9][A-Za-z0-9_-]*")
SEVERITIES = ("critical", "high", "medium", "low", "info")
#: The default ``alerts.precedence``: the most specific finding about a flow first.
FOLD_PRECEDENCE = (
    "cloud_registration",
    "nat_traversal",
    "outbound_stream",
    "audio_stream",
    "inbound_access",
    "upnp_port_mapping",
    "rogue_dns",
    "denied_country",
    "new_destination",
    "unexpected_egress",
)
DEFAULT_LOCAL_NETS: tuple[IPNetwork, ...] = tuple(
    v.parse_cidr(n)
    for n in (
        *("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"),  # RFC 1918
        "fc00::/7",  # RFC 4193 unique local
        *("169.254.0.0/16", "fe80::/10"),  # link-local
    )
)


def key(conv: Conv, default: Any = MISSING) -> Any:
    """A config key: its converter and its default (none = required)."""
    return field(default=default, metadata={"conv": conv})


def _opt_file() -> Any:
    return key(optional(v.path(must_exist=True)), None)


def _opt_secret() -> Any:
    return key(optional(v.secret_file), None)


@dataclass(frozen=True, slots=True, kw_only=True)
class SiteConfig:
    """site: the sensor's name and the networks that count as inside."""

    name: str = key(v.string(), "netwatch")
    local_nets: tuple[IPNetwork, ...] = key(list_of(v.cidr), DEFAULT_LOCAL_NETS)


@dataclass(frozen=True, slots=True, kw_only=True)
class CameraConfig:
    """cameras[]: one inventory entry, matched by exactly one of ip, cidr or mac."""

    RULES: ClassVar[Rules] = Rules(one_of=(OneOf(("ip", "cidr", "mac")),))
    name: str = key(v.string())
    ip: IPAddress | None = key(optional(v.ip), None)
    cidr: IPNetwork | None = key(optional(v.cidr), None)
    mac: str | None = key(optional(v.mac), None)
    group: str = key(v.group_ref, DEFAULT_GROUP)


CAMERA_MATCH_KEYS = ("ip", "cidr", "mac")


def _cameras(node: Node, ctx: Ctx, path: str) -> tuple[CameraConfig, ...]:
    """cameras[]: unique names, and each ip, mac or cidr listed once (the inventory would
    otherwise let one entry silently win); both lines are named."""
    cameras: tuple[CameraConfig, ...] = list_of(section(CameraConfig), unique="name")(
        node, ctx, path
    )
    first: dict[tuple[str, object], tuple[int, CameraConfig]] = {}
    for i, (cam, item) in enumerate(zip(cameras, node.value if cameras else (), strict=True)):
        for match in CAMERA_MATCH_KEYS:
            value = getattr(cam, match)
            if value is None:
                continue
            where = child(item, match) or item
            seen = first.setdefault((match, value), (line_of(where), cam))
            if seen[1] is not cam:
                line, other = seen
                message = (
                    f"{match} {value} is also camera {other.name!r} on line {line}; "
                    "list each camera once (the later entry would silently win)"
                )
                ctx.fail(where, f"{path}[{i}].{match}", message)
    return cameras


# ---------------------------------------------------------------- rule options

#: One config level's options for one rule: only the keys it sets (merged per group by
#: netwatch.rules.base.RuleOptions.merged: rule defaults < rules < groups.NAME.rules).
RuleSettings = Mapping[str, Any]
RULE_SWITCHES = {"on": True, "off": False}


def _no_rules() -> Mapping[str, RuleSettings]:
    return MappingProxyType({})


def _switch(node: Node, ctx: Ctx, path: str, names: tuple[str, ...]) -> bool:
    """`off`/`on` (YAML's booleans, or the words quoted) for a rule's `enabled`."""
    if is_scalar(node) and short_tag(node) == "bool":
        return bool(v.boolean(node, ctx, path))
    if is_scalar(node) and short_tag(node) == "str" and node.value in RULE_SWITCHES:
        return RULE_SWITCHES[node.value]
    options = ", ".join(names)
    ctx.fail(
        node,
        path,
        f"expected off, on or a mapping of the rule's options ({options}), got {describe(node)}",
    )


def _rule_settings(kind: type[Any], node: Node, ctx: Ctx, path: str) -> RuleSettings:
    """One rule's entry: `off` | `on` | a mapping of its options (validated by its class)."""
    if is_null(node):
        return MappingProxyType({})
    if is_scalar(node):
        return MappingProxyType({"enabled": _switch(node, ctx, path, kind.names())})
    built = build(kind, node, ctx, path)
    return MappingProxyType({k: getattr(built, k) for k, _, _ in items(node, ctx, path)})


def _rule_id(knode: Node, ctx: Ctx, path: str) -> type[Any]:
    """The options class of the rule a `rules` key names (unknown: a "did you mean")."""
    rule = v.rule_id(knode, ctx, path)
    kinds = v.rule_options_types()
    if rule not in kinds:
        if rule in v.known_rule_ids():
            message = f"{rule} is raised by the sensor, not by a flow rule: it has no options"
            ctx.fail(knode, path, message)
        ctx.fail(knode, path, v.unknown_rule(rule, tuple(kinds)))
    kind: type[Any] = kinds[rule]
    return kind


def _rules(node: Node, ctx: Ctx, path: str) -> Mapping[str, RuleSettings]:
    """`rules` (top level or a group's): rule id -> off | on | options."""
    if is_null(node):
        return _no_rules()
    expect(node, ctx, path, "map")
    out = {
        rule: _rule_settings(_rule_id(knode, ctx, join(path, rule)), vnode, ctx, join(path, rule))
        for rule, knode, vnode in items(node, ctx, path)
    }
    return MappingProxyType(out)


def _rules_key() -> Any:
    return field(default_factory=_no_rules, hash=False, metadata={"conv": _rules})


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupPolicy:
    """groups.NAME: what the cameras of one group may talk to, and the group's rule options
    (`rules`: rule id -> the options this group sets; see `_group`)."""

    allow_nets: tuple[IPNetwork, ...] = key(list_of(v.cidr), ())
    allow_names: tuple[str, ...] = key(list_of(v.name_pattern), ())
    allow_countries: tuple[str, ...] = key(list_of(v.country), ())
    allow_asns: tuple[int, ...] = key(list_of(v.asn), ())
    allow_ports: tuple[PortRule, ...] = key(list_of(v.port_rule), ())
    dns_servers: tuple[IPAddress, ...] = key(list_of(v.ip), ())
    ntp_servers: tuple[IPAddress, ...] = key(list_of(v.ip), ())
    deny_countries: tuple[str, ...] = key(list_of(v.country), ())
    deny_asns: tuple[int, ...] = key(list_of(v.asn), ())
    rules: Mapping[str, RuleSettings] = _rules_key()


def _legacy_keys() -> dict[str, tuple[str, type[Any]]]:
    """Deprecated group keys (an option a rule declares in LEGACY_GROUP_KEYS) -> (rule id,
    its options class)."""
    return {
        name: (rule, kind)
        for rule, kind in v.rule_options_types().items()
        for name in kind.LEGACY_GROUP_KEYS
    }


def _group(node: Node, ctx: Ctx, path: str) -> GroupPolicy:
    """groups.NAME, reading the deprecated `groups.NAME.<option>` keys (outbound_stream's
    thresholds before rules had options) into `rules.<id>.<option>` with a warning."""
    legacy = _legacy_keys()
    if not is_mapping(node) or not legacy:
        return build(GroupPolicy, node, ctx, path)
    pairs = [(k, knode, vnode) for k, knode, vnode in items(node, ctx, path)]
    moved = [(k, knode, vnode) for k, knode, vnode in pairs if k in legacy]
    if not moved:
        return build(GroupPolicy, node, ctx, path)
    kept = [(knode, vnode) for k, knode, vnode in pairs if k not in legacy]
    from yaml.nodes import MappingNode  # noqa: PLC0415 - loaded: the node is PyYAML's

    rest = MappingNode(node.tag, kept, node.start_mark, node.end_mark, node.flow_style)
    policy = build(GroupPolicy, rest, ctx, path)
    rules = {rule: dict(values) for rule, values in policy.rules.items()}
    for name, knode, vnode in moved:
        rule, kind = legacy[name]
        new = f"{join(path, 'rules')}.{rule}.{name}"
        target = rules.setdefault(rule, {})
        if name in target:
            ctx.fail(knode, join(path, name), f"also set as {new}: remove this deprecated key")
        ctx.warn(knode, join(path, name), f"deprecated key: use {new}")
        if not is_null(vnode):  # null meant "the rule's default" for the clip thresholds
            conv: Conv = next(f for f in dataclasses.fields(kind) if f.name == name).metadata[
                "conv"
            ]
            target[name] = conv(vnode, ctx, join(path, name))
    frozen = {rule: MappingProxyType(values) for rule, values in rules.items()}
    return dataclasses.replace(policy, rules=MappingProxyType(frozen))


@dataclass(frozen=True, slots=True, kw_only=True)
class CaptureConfig:
    """capture: live interfaces or, instead, capture files to replay."""

    RULES: ClassVar[Rules] = Rules(one_of=(OneOf(("interfaces", "files"), required=False),))
    interfaces: tuple[str, ...] = key(list_of(v.string(pattern=lazy(r"\S+"), what="")), ())
    files: tuple[Path, ...] = key(list_of(v.path(must_exist=True)), ())
    bpf: str = key(v.string(empty=True), "")
    loop: bool = key(v.boolean, False)
    realtime: bool = key(v.boolean, False)
    speed: float = key(v.factor, 1.0)
    snaplen: int = key(v.integer(1, 262_144), 65_535)
    method: str = key(v.choice("afpacket", "tshark"), "afpacket")
    workers: int = key(v.integer(0, 64), 0)
    ring_mb: int = key(v.integer(1, 4096), 64)
    block_kb: int = key(v.integer(4, 65_536), 1024)
    promisc: bool = key(v.boolean, True)
    user: str | None = key(
        optional(v.string(pattern=lazy(r"[A-Za-z0-9_][A-Za-z0-9_.-]*"), what="a user name")),
        "nobody",
    )
    loss_threshold: float = key(v.factor, 0.01)


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsConfig:
    """metrics: the Prometheus endpoint and its optional exporter-toolkit web config."""

    listen: HostPort = key(v.host_port, HostPort("127.0.0.1", 9847))
    web_config: Path | None = _opt_file()
    site_label: bool = key(v.boolean, False)


def _check_syslog(values: dict[str, Any]) -> tuple[str, str] | None:
    """Syslog: infer the transport from the address, or check that they fit."""
    if values["type"] != "syslog":
        return None
    is_unix = isinstance(values["address"], Path)
    transport = values.get("transport")
    if transport is None:
        values["transport"] = "unix" if is_unix else "udp"
    elif (transport == "unix") != is_unix:
        need = "a socket path such as /dev/log" if transport == "unix" else "host:port"
        return "transport", f"transport {transport!r} needs an address that is {need}"
    return None


_TLS_KEYS = frozenset({"ca_file", "cert_file", "key_file"})
_AUTH_KEYS = frozenset({"username", "password_file", "password_env"})
_HTTP_CLIENT_KEYS = _TLS_KEYS | _AUTH_KEYS | {"token_file", "token_env", "server_name"}
_AT_MOST_ONE = (
    OneOf(("password_file", "password_env"), required=False),
    OneOf(("token_file", "token_env"), required=False),
)
SUBJECT_FIELDS = ("severity", "rule", "device", "device_ip", "peer", "country", "site", "count")
DEFAULT_SUBJECT = "[netwatch] {severity} {rule} {device}"


#: The fields an ``alerts.dashboard_url`` template may use: record fields (URL-quoted when
#: filled in) and the incident's time range in epoch milliseconds (Grafana's from/to).
DASHBOARD_FIELDS = (
    "device",
    "device_ip",
    "device_mac",
    "vendor",
    "site",
    "group",
    "platform",
    "rule",
    "severity",
    "reached",
    "peer_ip",
    "peer_name",
    "from_ms",
    "to_ms",
)


def _template_problem(template: str, allowed: tuple[str, ...]) -> str | None:
    """Why ``template`` is not a usable str.format template over ``allowed``, or None."""
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        return f"not a valid template ({exc}; write {{{{ and }}}} for literal braces)"
    for name in fields:
        if name not in allowed:
            return f"unknown field {{{name}}} (fields: {', '.join(allowed)})"
    return None


def _check_alerts(values: dict[str, Any]) -> tuple[str, str] | None:
    """``dashboard_url``: an http(s) URL template over :data:`DASHBOARD_FIELDS`."""
    template = values["dashboard_url"]
    if template is None:
        return None
    if not template.startswith(("http://", "https://")):
        return "dashboard_url", f"{template!r} is not an http:// or https:// URL template"
    problem = _template_problem(template, DASHBOARD_FIELDS)
    return ("dashboard_url", problem) if problem else None


def _subject_problem(template: str) -> str | None:
    """Why ``template`` is not a usable subject template (str.format fields), or None."""
    return _template_problem(template, SUBJECT_FIELDS)


def _check_http_client(values: dict[str, Any]) -> tuple[str, str] | None:
    """Basic auth needs a user and a password; a bearer token excludes basic auth; a client
    certificate needs its key."""
    has_password = values["password_file"] is not None or values["password_env"] is not None
    has_token = values["token_file"] is not None or values["token_env"] is not None
    if values["username"] is not None and not has_password:
        return "username", "basic auth needs password_file or password_env as well"
    if has_password and values["username"] is None:
        which = "password_file" if values["password_file"] is not None else "password_env"
        return which, "basic auth needs username as well"
    if has_token and values["username"] is not None:
        which = "token_file" if values["token_file"] is not None else "token_env"
        return which, "a bearer token cannot be combined with basic auth (username): use one"
    if (values["cert_file"] is None) != (values["key_file"] is None):
        return (
            ("key_file", "needs cert_file as well")
            if values["cert_file"] is None
            else (
                "cert_file",
                "needs key_file as well (the client certificate's private key)",
            )
        )
    return None


def _check_alertmanager(values: dict[str, Any]) -> tuple[str, str] | None:
    if values["ended"] is not None:
        return "ended", (
            "Alertmanager resolves its alerts itself (alerts.resolve_s): ended does not apply"
        )
    tls_set = any(values[k] is not None for k in (*_TLS_KEYS, "server_name"))
    if tls_set and not any(u.startswith("https://") for u in values["urls"]):
        key_ = next(k for k in ("ca_file", "cert_file", "key_file", "server_name") if values[k])
        return key_, "TLS options need an https:// URL in urls"
    return None


def _check_smtp(values: dict[str, Any]) -> tuple[str, str] | None:
    if values["tls"] == "none" and values["username"] is not None:
        return "tls", "tls none would send the password in the clear: use starttls or implicit"
    if values["tls"] == "none" and values["cert_file"] is not None:
        return "tls", "a client certificate (cert_file) needs tls starttls or implicit"
    problem = _subject_problem(values["subject"])
    return ("subject", problem) if problem else None


_TYPE_CHECKS = {"alertmanager": _check_alertmanager, "smtp": _check_smtp}


def _check_sink(values: dict[str, Any]) -> tuple[str, str] | None:
    """The cross-field checks of one sink: syslog's transport, HTTP/SMTP client options."""
    problem = _check_syslog(values) or _check_http_client(values)
    check = _TYPE_CHECKS.get(values["type"])
    return problem or (check(values) if check else None)


_URL_KEYS = Variant(frozenset({"url_file", "url_env"}), (OneOf(("url_file", "url_env")),))
SINK_TYPES: Mapping[str, Variant] = MappingProxyType(
    {
        "jsonl": Variant(frozenset({"path"}), (OneOf(("path",)),)),
        "alertmanager": Variant(
            frozenset({"urls"}) | _HTTP_CLIENT_KEYS, (OneOf(("urls",)), *_AT_MOST_ONE)
        ),
        "webhook": Variant(_URL_KEYS.keys | _HTTP_CLIENT_KEYS, (*_URL_KEYS.one_of, *_AT_MOST_ONE)),
        "slack": _URL_KEYS,
        "teams": _URL_KEYS,
        "pagerduty": Variant(
            frozenset({"routing_key_file", "routing_key_env"}),
            (OneOf(("routing_key_file", "routing_key_env")),),
        ),
        "syslog": Variant(frozenset({"address", "transport", "format"}), (OneOf(("address",)),)),
        "smtp": Variant(
            frozenset({"smarthost", "tls", "mail_from", "mail_to", "subject"})
            | _AUTH_KEYS
            | _TLS_KEYS
            | {"server_name"},
            (
                OneOf(("smarthost",)),
                OneOf(("mail_from",)),
                OneOf(("mail_to",)),
                *_AT_MOST_ONE[:1],
            ),
        ),
    }
)
SINK_HINTS: Mapping[str, str] = MappingProxyType(
    {
        **{
            key_: f"secrets never go inline in the config: use {key_}_file or {key_}_env"
            for key_ in ("url", "routing_key", "password", "token")
        },
        "bearer_token": "secrets never go inline in the config: use token_file or token_env",
        "bearer_token_file": "the bearer token's file is token_file here",
        "basic_auth": "write username with password_file or password_env (no basic_auth map)",
        "auth_password": "secrets never go inline in the config: use password_file or password_env",
        "tls_config": "TLS options are keys of the sink here: ca_file, cert_file, key_file, "
        "server_name",
    }
)
# RFC 7617: the user-id of basic auth cannot contain a colon; no control characters either
username_re = lazy(r"[^:\x00-\x1f\x7f]+")
# dot-atom local part @ a host name: enough for a From/To, no room for header tricks
email_re = lazy(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
)
server_name_re = lazy(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
_email = v.string(pattern=email_re, what="an e-mail address such as netwatch@example.org")


@dataclass(frozen=True, slots=True, kw_only=True)
class SinkConfig:
    """sinks[]: one alert destination; the keys allowed depend on `type`."""

    RULES: ClassVar[Rules] = Rules(
        variant_key="type", variants=SINK_TYPES, hints=SINK_HINTS, check=_check_sink
    )
    name: str = key(v.string())
    type: str = key(v.choice(*SINK_TYPES))
    rules: tuple[str, ...] = key(list_of(v.rule_ref), ())
    min_severity: str = key(v.choice(*SEVERITIES), "info")
    groups: tuple[str, ...] = key(list_of(v.group_ref), ())
    # a message when an incident ends; null: the type's default (sinks/base.py)
    ended: bool | None = key(optional(v.boolean), None)
    path: Path | None = key(optional(v.path()), None)
    urls: tuple[str, ...] = key(list_of(v.url), ())
    url_file: Path | None = _opt_secret()
    url_env: str | None = key(optional(v.env_name), None)
    routing_key_file: Path | None = _opt_secret()
    routing_key_env: str | None = key(optional(v.env_name), None)
    address: HostPort | Path | None = key(optional(v.syslog_address), None)
    transport: str | None = key(optional(v.choice("udp", "tcp", "unix")), None)
    format: str = key(v.choice("rfc5424", "cef"), "rfc5424")
    # HTTP (alertmanager, webhook) and SMTP client options
    username: str | None = key(
        optional(v.string(pattern=username_re, what="a user name without ':'")), None
    )
    password_file: Path | None = _opt_secret()
    password_env: str | None = key(optional(v.env_name), None)
    token_file: Path | None = _opt_secret()
    token_env: str | None = key(optional(v.env_name), None)
    ca_file: Path | None = _opt_file()
    cert_file: Path | None = _opt_file()
    key_file: Path | None = _opt_secret()
    server_name: str | None = key(
        optional(v.string(pattern=server_name_re, what="a host name")), None
    )
    # smtp
    smarthost: HostPort | None = key(optional(v.host_port), None)
    tls: str = key(v.choice("starttls", "implicit", "none"), "starttls")
    mail_from: str | None = key(optional(_email), None)
    mail_to: tuple[str, ...] = key(list_of(_email), ())
    subject: str = key(v.string(), DEFAULT_SUBJECT)


@dataclass(frozen=True, slots=True, kw_only=True)
class GeoipConfig:
    """geoip: MaxMind-format databases (a City DB also gives countries) or the built-in set."""

    country_db: Path | None = _opt_file()
    asn_db: Path | None = _opt_file()
    city_db: Path | None = _opt_file()
    max_age_days: int = key(v.integer(1), 180)
    builtin: bool = key(v.boolean, True)
    # the built-in data's unpacked files, kept across starts (netwatch.enrich.geocache);
    # cache_dir None: $CACHE_DIRECTORY/geoip, $XDG_CACHE_HOME/netwatch/geoip or
    # ~/.cache/netwatch/geoip
    cache: bool = key(v.boolean, True)
    cache_dir: Path | None = key(optional(v.path()), None)


@dataclass(frozen=True, slots=True, kw_only=True)
class FlowsConfig:
    """flows: flow-table bounds and timeouts (seconds of packet time; the TCP and DNS ones
    are Zeek's defaults: tcp_close_delay, tcp_attempt_delay, tcp_partial_close_delay,
    dns_session_timeout)."""

    max_flows: int = key(v.integer(1), 1_000_000)
    tcp_idle_s: float = key(v.seconds, 300.0)
    udp_idle_s: float = key(v.seconds, 60.0)
    icmp_idle_s: float = key(v.seconds, 60.0)
    other_idle_s: float = key(v.seconds, 60.0)
    tcp_closed_s: float = key(v.seconds, 5.0)
    tcp_attempt_s: float = key(v.seconds, 5.0)
    tcp_partial_close_s: float = key(v.seconds, 3.0)
    dns_idle_s: float = key(v.seconds, 10.0)
    active_timeout_s: float = key(v.seconds, 3600.0)
    max_fragments: int = key(v.integer(1), 4096)
    fragment_timeout_s: float = key(v.seconds, 30.0)


def _check_ttls(values: dict[str, Any]) -> tuple[str, str] | None:
    low, high = values["min_ttl_s"], values["max_ttl_s"]
    return ("min_ttl_s", f"must not exceed max_ttl_s ({high:g})") if low > high else None


@dataclass(frozen=True, slots=True, kw_only=True)
class DnsConfig:
    """dns: the cache of names seen in DNS answers, and the TTL clamp applied to them."""

    RULES: ClassVar[Rules] = Rules(check=_check_ttls)
    cache_size: int = key(v.integer(1), 100_000)
    min_ttl_s: float = key(v.seconds, 60.0)
    max_ttl_s: float = key(v.seconds, 86_400.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class DeepConfig:
    """deep: how much payload the deep parsers get."""

    max_payload_packets: int = key(v.integer(1), 8)
    max_hello_bytes: int = key(v.integer(1), 16_384)


@dataclass(frozen=True, slots=True, kw_only=True)
class LearningConfig:
    """learning: how long new_destination learns, and how many destinations are kept."""

    period_s: float = key(v.seconds, 604_800.0)
    max_per_device: int = key(v.integer(1), 10_000)
    max_destinations: int = key(v.integer(1), 200_000)


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertsConfig:
    """alerts: suppression of repeats, checks of active flows, incidents ending and the
    Alertmanager life cycle, the bounds of the delivery outbox (rows and megabytes of
    payload), and the dashboard link of chat messages."""

    RULES: ClassVar[Rules] = Rules(check=_check_alerts)
    suppress_s: float = key(v.seconds, 3600.0)
    evaluate_active_s: float = key(v.seconds, 60.0)
    resend_s: float = key(v.seconds, 60.0)
    resolve_s: float = key(v.seconds, 3600.0)
    outbox_max_rows: int = key(v.integer(100), 100_000)
    outbox_max_mb: int = key(v.integer(1), 256)
    max_per_device: int = key(v.integer(1), 50)
    device_window_s: float = key(v.seconds, 3600.0)
    # one notification per camera: its first report waits group_wait_s for others, later
    # ones go out together every group_interval_s (netwatch/alerts/grouping.py); 0 and 0:
    # every report at once, alone
    group_wait_s: float = key(v.delay, 60.0)
    group_interval_s: float = key(v.delay, 300.0)
    # one flow, one notification: the first rule of this list among a flow's findings is the
    # alert, the others its evidence (netwatch/alerts/incidents.py); rules not listed never fold
    precedence: tuple[str, ...] = key(list_of(v.rule_ref), FOLD_PRECEDENCE)
    # a link to the camera's dashboard in Slack/webhook/Teams messages: a URL template over
    # DASHBOARD_FIELDS (values URL-quoted); null: no link
    dashboard_url: str | None = key(optional(v.string()), None)


@dataclass(frozen=True, slots=True, kw_only=True)
class EvidenceConfig:
    """evidence: the first packets of a flow that may alert, kept in memory and written as a
    pcap file under ``<state_dir>/evidence`` when the flow alerts (netwatch.alerts.evidence).
    Off in ``netwatch replay`` without ``--state-dir`` (nowhere to write)."""

    enabled: bool = key(v.boolean, True)
    packets: int = key(v.integer(1, 10_000), 16)
    bytes: int = key(v.integer(64, 16 * 1024 * 1024), 65_536)
    snaplen: int = key(v.integer(64, 262_144), 1_600)
    max_memory_mb: int = key(v.integer(1), 64)
    max_total_mb: int = key(v.integer(1), 256)
    max_age_days: int = key(v.integer(1), 30)


@dataclass(frozen=True, slots=True, kw_only=True)
class LoggingConfig:
    """logging: the daemon's own log lines."""

    format: str = key(v.choice("json", "logfmt"), "logfmt")
    level: str = key(v.choice("debug", "info", "warning", "error"), "info")


def _implicit_groups() -> Mapping[str, GroupPolicy]:
    return {DEFAULT_GROUP: GroupPolicy()}


def _default_groups() -> Mapping[str, GroupPolicy]:
    return MappingProxyType(dict(_implicit_groups()))


_GROUPS = mapping_of(_group, key_re=group_name_re, what="group name", implicit=_implicit_groups)


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """The whole configuration; build it with `Config.load(path)` or `Config.default()`."""

    site: SiteConfig = key(section(SiteConfig), SiteConfig())
    cameras: tuple[CameraConfig, ...] = key(_cameras, ())
    groups: Mapping[str, GroupPolicy] = field(
        default_factory=_default_groups, hash=False, metadata={"conv": _GROUPS}
    )
    # rule id -> the options set for the whole site (a group's rules override them)
    rules: Mapping[str, RuleSettings] = _rules_key()
    capture: CaptureConfig = key(section(CaptureConfig), CaptureConfig())
    metrics: MetricsConfig = key(section(MetricsConfig), MetricsConfig())
    state_dir: Path = key(v.path(), Path("/var/lib/netwatch"))
    flow_log: Path | None = key(optional(v.path()), None)
    alert_log: Path | None = key(optional(v.path()), None)
    sinks: tuple[SinkConfig, ...] = key(list_of(section(SinkConfig), unique="name"), ())
    geoip: GeoipConfig = key(section(GeoipConfig), GeoipConfig())
    flows: FlowsConfig = key(section(FlowsConfig), FlowsConfig())
    dns: DnsConfig = key(section(DnsConfig), DnsConfig())
    deep: DeepConfig = key(section(DeepConfig), DeepConfig())
    learning: LearningConfig = key(section(LearningConfig), LearningConfig())
    alerts: AlertsConfig = key(section(AlertsConfig), AlertsConfig())
    evidence: EvidenceConfig = key(section(EvidenceConfig), EvidenceConfig())
    logging: LoggingConfig = key(section(LoggingConfig), LoggingConfig())
    shutdown_timeout_s: float = key(v.seconds, 20.0)
    warnings: tuple[ConfigWarning, ...] = field(default=(), compare=False, repr=False)
    """Not a key: what loading accepted with a warning (file:line: key: message each)."""

    @classmethod
    def default(cls) -> Config:
        """The built-in zero-config set-up."""
        return cls()

    @classmethod
    def load(cls, path: str | Path) -> Config:
        """Read and validate a YAML config file; raises ConfigError (file, line, key path)."""
        file = str(path)
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise ConfigError(file, 1, TOP, f"cannot read: {exc.strerror or exc}") from None
        return cls.from_yaml(data, file=file, base_dir=Path(path).absolute().parent)

    @classmethod
    def from_yaml(
        cls, data: str | bytes, *, file: str = "<string>", base_dir: Path | None = None
    ) -> Config:
        """Validate YAML text; relative paths resolve against `base_dir` (default: cwd)."""
        ctx = Ctx(file, (base_dir or Path.cwd()).absolute())
        node = compose(data, file)
        if node is not None and not is_mapping(node) and not is_null(node):
            raise ConfigError(file, 1, TOP, f"expected a mapping of keys, got {describe(node)}")
        names = frozenset(_group_names(node, ctx)) | {DEFAULT_GROUP}
        ctx = Ctx(ctx.file, ctx.base, names)
        cfg = build(cls, node, ctx, "")
        return dataclasses.replace(cfg, warnings=tuple(ctx.notes)) if ctx.notes else cfg

    def group(self, name: str) -> GroupPolicy:
        """The policy of a group by name (KeyError for an undefined group)."""
        return self.groups[name]


def _group_names(node: Any, ctx: Ctx) -> list[str]:
    groups = next((val for k, _, val in _top_items(node, ctx) if k == "groups"), None)
    if not is_mapping(groups):
        return []
    return [k for k, _, _ in items(groups, ctx, "groups")]


def _top_items(node: Any, ctx: Ctx) -> list[tuple[str, Any, Any]]:
    return list(items(node, ctx, "")) if is_mapping(node) else []
