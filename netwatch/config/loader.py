"""YAML node trees with line numbers, and the generic engine that turns them into dataclasses.

The file is composed (never constructed) with `yaml.SafeLoader`, so every value keeps its
`start_mark`; errors report `mark.line + 1`. A config section is a frozen dataclass whose
fields carry their converter in `metadata["conv"]` (see `schema.py`): this module walks a
mapping node, rejects unknown and duplicate keys, runs each field's converter, applies the
section's cross-field `Rules` (exactly-one-of, per-type variants, a final check) and builds
the dataclass. Converters have the signature `(node, ctx, key_path) -> value`.

Converters may also record a `ConfigWarning` (a usable but suspicious value, such as a
secret file that is a symlink) with `ctx.warn`; `Config.warnings` carries them.

PyYAML is imported when a file is composed (`compose`) or a scalar constructed (`typed`),
not with this module: a process that reads no YAML (a replay with the built-in config and the
seeds from `netwatch.seedstore`) never loads it. Node kinds are told by `is_scalar`,
`is_sequence` and `is_mapping` (the `id` PyYAML's node classes carry) for that reason.

Reads no config keys itself. Known limits: YAML merge keys (`<<`) are rejected; the first
error found ends validation (one error per run).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NoReturn, TypeGuard, TypeVar

from netwatch.config.errors import TOP, ConfigError, ConfigWarning

if TYPE_CHECKING:
    from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

T = TypeVar("T")
TAG = "tag:yaml.org,2002:"
KINDS: Mapping[str, str] = MappingProxyType(
    {
        "str": "a string",
        "int": "an integer",
        "float": "a number",
        "bool": "a boolean",
        "null": "null",
        "timestamp": "a date/time",
        "binary": "binary data",
    }
)
TEXT_TAGS = ("str", "int", "float", "bool", "timestamp")


@dataclass(frozen=True, slots=True)
class Ctx:
    """What converters need besides the node: where errors point and where paths resolve."""

    file: str
    base: Path
    group_names: frozenset[str] = frozenset()
    notes: list[ConfigWarning] = field(default_factory=list, compare=False, hash=False)
    """Warnings found so far (shared by the copies of one load)."""

    def fail(self, node: Node | None, path: str, message: str) -> NoReturn:
        raise ConfigError(self.file, line_of(node), path or TOP, message)

    def warn(self, node: Node | None, path: str, message: str) -> None:
        self.notes.append(ConfigWarning(self.file, line_of(node), path or TOP, message))


def line_of(node: Node | None) -> int:
    """The 1-based line of a node (1 without one)."""
    return node.start_mark.line + 1 if node is not None else 1


Conv = Callable[["Node", Ctx, str], Any]
#: A pattern given as the function that compiles it (:func:`netwatch.lazyre.lazy`).
Pattern = Callable[[], re.Pattern[str]]


@dataclass(frozen=True, slots=True)
class OneOf:
    """Of `keys`, at most one may be set; with `required`, exactly one must be."""

    keys: tuple[str, ...]
    required: bool = True


@dataclass(frozen=True, slots=True)
class Variant:
    """The keys allowed (and the one-of rules) when a section's discriminator has one value."""

    keys: frozenset[str]
    one_of: tuple[OneOf, ...] = ()


@dataclass(frozen=True, slots=True)
class Rules:
    """Cross-field rules of a section, declared as a `RULES` class variable."""

    one_of: tuple[OneOf, ...] = ()
    variant_key: str = ""
    variants: Mapping[str, Variant] = field(default_factory=dict)
    hints: Mapping[str, str] = field(default_factory=dict)
    check: Callable[[dict[str, Any]], tuple[str, str] | None] | None = None
    """Gets every field's value (defaults filled in), may fill in derived values, and
    returns (key, message) for a problem or None."""


NO_RULES = Rules()


# ---------------------------------------------------------------- reading and composing

#: libyaml's loader (``yaml.CSafeLoader``), None without libyaml; looked up by the first
#: ``compose`` (``_UNSET`` until then).
_UNSET: Any = object()
_C_LOADER: Any = _UNSET


def compose(data: bytes | str, file: str, *, fast: bool = False) -> Node | None:
    """Parse YAML text into a node tree; any syntax problem becomes a ConfigError.

    ``fast``: parse with libyaml (``yaml.CSafeLoader``, about 10 times faster) when PyYAML
    has it; a document libyaml refuses is parsed again with the pure-Python loader, so
    errors read the same either way. For the seeds (shipped, tested files); configs keep the
    pure loader (libyaml could accept a file the pure loader refuses).
    """
    global _C_LOADER  # noqa: PLW0603 - looked up once, on first use
    import yaml  # noqa: PLC0415 - see the module docstring

    if _C_LOADER is _UNSET:
        _C_LOADER = getattr(yaml, "CSafeLoader", None)
    try:
        source = data.decode("utf-8-sig") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise ConfigError(file, line, TOP, f"not UTF-8 text (byte {exc.start})") from None
    if fast and _C_LOADER is not None:
        try:
            fast_node: Node | None = yaml.compose(source, Loader=_C_LOADER)
            return fast_node
        except (yaml.YAMLError, RecursionError):
            pass  # the pure loader below reports it
    try:
        node: Node | None = yaml.compose(source, Loader=yaml.SafeLoader)
        return node
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        detail = f" ({exc.context})" if exc.context else ""
        raise ConfigError(file, line, TOP, f"YAML syntax error: {exc.problem}{detail}") from None
    except yaml.reader.ReaderError as exc:
        line = source[: exc.position].count("\n") + 1
        raise ConfigError(file, line, TOP, f"YAML syntax error: {exc.reason}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(file, 1, TOP, f"YAML error: {exc}") from None
    except RecursionError:
        raise ConfigError(file, 1, TOP, "YAML nesting is too deep") from None


# ---------------------------------------------------------------- node helpers


def is_scalar(node: object) -> TypeGuard[ScalarNode]:
    """``isinstance(node, yaml.nodes.ScalarNode)``, without importing PyYAML."""
    return getattr(node, "id", None) == "scalar"


def is_sequence(node: object) -> TypeGuard[SequenceNode]:
    """``isinstance(node, yaml.nodes.SequenceNode)``, without importing PyYAML."""
    return getattr(node, "id", None) == "sequence"


def is_mapping(node: object) -> TypeGuard[MappingNode]:
    """``isinstance(node, yaml.nodes.MappingNode)``, without importing PyYAML."""
    return getattr(node, "id", None) == "mapping"


def short_tag(node: Node) -> str:
    tag: str = node.tag
    return tag.removeprefix(TAG)


def describe(node: Node) -> str:
    """'a list', 'an integer', ... for 'expected X, got Y' messages."""
    if is_mapping(node) and short_tag(node) == "map":
        return "a mapping"
    if is_sequence(node) and short_tag(node) == "seq":
        return "a list"
    return KINDS.get(short_tag(node), f"a value tagged {node.tag}")


def is_null(node: Node) -> bool:
    return is_scalar(node) and short_tag(node) == "null"


def expect(node: Node, ctx: Ctx, path: str, tag: str) -> None:
    """Fail unless `node` is a plain mapping (tag 'map') or list (tag 'seq')."""
    kind, what = (is_mapping, "a mapping") if tag == "map" else (is_sequence, "a list")
    if not kind(node) or short_tag(node) != tag:
        ctx.fail(node, path, f"expected {what}, got {describe(node)}")


def typed(node: Node, ctx: Ctx, path: str, tags: tuple[str, ...], what: str) -> Any:
    """The Python value of a scalar whose YAML type is one of `tags`."""
    if not is_scalar(node) or short_tag(node) not in tags:
        ctx.fail(node, path, f"expected {what}, got {describe(node)}")
    import yaml  # noqa: PLC0415 - see the module docstring (loaded: a node exists)
    from yaml.constructor import SafeConstructor  # noqa: PLC0415

    try:
        return SafeConstructor().construct_object(node)
    except (ArithmeticError, LookupError, ValueError, yaml.YAMLError):  # explicit-tag abuse
        ctx.fail(node, path, f"{node.value!r} is not {describe(node)}")


def text(node: Node, ctx: Ctx, path: str, what: str = "a string") -> str:
    """A scalar's text as written: `NO` stays "NO", an unquoted MAC stays a MAC."""
    if not is_scalar(node) or short_tag(node) not in TEXT_TAGS:
        ctx.fail(node, path, f"expected {what}, got {describe(node)}")
    value: str = node.value
    return value


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path and key else path or key


def items(node: Node, ctx: Ctx, path: str) -> Iterator[tuple[str, Node, Node]]:
    """(key, key node, value node) in file order; duplicate or non-text keys are errors."""
    seen: dict[str, int] = {}
    for knode, vnode in node.value:
        if short_tag(knode) == "merge":
            ctx.fail(knode, path, "YAML merge keys (<<) are not supported")
        key = text(knode, ctx, path, "a text key")
        if key in seen:
            ctx.fail(knode, join(path, key), f"duplicate key (first defined on line {seen[key]})")
        seen[key] = knode.start_mark.line + 1
        yield key, knode, vnode


def child(node: Node, key: str) -> Node | None:
    """The value node under `key` in a mapping node, if any."""
    if is_mapping(node):
        for knode, vnode in node.value:
            if is_scalar(knode) and knode.value == key:
                found: Node = vnode
                return found
    return None


# ---------------------------------------------------------------- compound converters


def optional(conv: Conv) -> Conv:
    """`null` gives None; anything else goes through `conv`."""

    def run(node: Node, ctx: Ctx, path: str) -> Any:
        return None if is_null(node) else conv(node, ctx, path)

    return run


def list_of(conv: Conv, *, unique: str = "") -> Conv:
    """A list (null = empty) of `conv` values as a tuple; `unique` names an attribute."""

    def run(node: Node, ctx: Ctx, path: str) -> tuple[Any, ...]:
        if is_null(node):
            return ()
        expect(node, ctx, path, "seq")
        out: list[Any] = []
        first: dict[Any, int] = {}
        for i, item in enumerate(node.value):
            value = conv(item, ctx, f"{path}[{i}]")
            if unique:
                uid, where = getattr(value, unique), child(item, unique) or item
                if uid in first:
                    message = f"duplicate {unique} {uid!r} (first on line {first[uid]})"
                    ctx.fail(where, f"{path}[{i}].{unique}", message)
                first[uid] = where.start_mark.line + 1
            out.append(value)
        return tuple(out)

    return run


def mapping_of(
    conv: Conv, *, key_re: Pattern, what: str, implicit: Callable[[], Mapping[str, Any]]
) -> Conv:
    """A mapping of user-chosen names (matching `key_re`) to `conv` values, on top of the
    `implicit` entries."""

    def run(node: Node, ctx: Ctx, path: str) -> Mapping[str, Any]:
        out = dict(implicit())
        if not is_null(node):
            expect(node, ctx, path, "map")
            for key, knode, vnode in items(node, ctx, path):
                if not key_re().fullmatch(key):
                    ctx.fail(knode, join(path, key), f"{key!r} is not a valid {what}")
                out[key] = conv(vnode, ctx, join(path, key))
        return MappingProxyType(out)

    return run


def section(cls: type[T]) -> Conv:
    """A converter that builds the dataclass `cls` from a mapping node (null = defaults)."""

    def run(node: Node, ctx: Ctx, path: str) -> T:
        return build(cls, node, ctx, path)

    return run


# ---------------------------------------------------------------- the section engine


def build(cls: type[T], node: Node | None, ctx: Ctx, path: str) -> T:
    """Validate a mapping node against the fields and RULES of `cls` and build it.

    Only fields with a converter (`metadata["conv"]`) are keys; others keep their default."""
    fields = {
        f.name: f
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        if "conv" in f.metadata
    }
    rules: Rules = getattr(cls, "RULES", NO_RULES)
    values: dict[str, Any] = {}
    keys: dict[str, Node] = {}
    if node is not None and not is_null(node):
        expect(node, ctx, path, "map")
        for key, knode, vnode in items(node, ctx, path):
            if key not in fields:
                ctx.fail(knode, join(path, key), _unknown(key, fields, rules.hints))
            values[key] = fields[key].metadata["conv"](vnode, ctx, join(path, key))
            keys[key] = knode
    for name, fld in fields.items():
        required = fld.default is dataclasses.MISSING and fld.default_factory is dataclasses.MISSING
        if required and name not in values:
            ctx.fail(node, join(path, name), "required key is missing")
    for rule in rules.one_of + _variant_rules(rules, values, keys, ctx, path):
        problem = _one_of_problem(rule, values, keys)
        if problem is not None:
            ctx.fail(keys.get(problem[0], node), join(path, problem[0]), problem[1])
    full = {name: values[name] if name in values else _default(f) for name, f in fields.items()}
    problem = rules.check(full) if rules.check else None
    if problem is not None:
        ctx.fail(keys.get(problem[0], node), join(path, problem[0]), problem[1])
    return cls(**full)


def _default(fld: dataclasses.Field[Any]) -> Any:
    if fld.default_factory is not dataclasses.MISSING:
        return fld.default_factory()
    return fld.default


def _unknown(key: str, fields: Mapping[str, object], hints: Mapping[str, str]) -> str:
    if key in hints:
        return hints[key]
    import difflib  # noqa: PLC0415 - on a bad key only (not at every start)

    close = difflib.get_close_matches(key, list(fields), n=1)
    if close:
        return f"unknown key (did you mean {close[0]!r}?)"
    return f"unknown key (valid keys: {', '.join(fields)})"


def _variant_rules(
    rules: Rules, values: dict[str, Any], keys: dict[str, Node], ctx: Ctx, path: str
) -> tuple[OneOf, ...]:
    if not rules.variant_key:
        return ()
    kind = values[rules.variant_key]
    variant = rules.variants[kind]
    specific = frozenset().union(*(v.keys for v in rules.variants.values()))
    for key, knode in keys.items():
        if key in specific and key not in variant.keys:
            valid = ", ".join(sorted(variant.keys))
            message = f"not valid when {rules.variant_key} is {kind!r} (valid here: {valid})"
            ctx.fail(knode, join(path, key), message)
    return variant.one_of


def _one_of_problem(
    rule: OneOf, values: dict[str, Any], keys: dict[str, Node]
) -> tuple[str, str] | None:
    """(key, message) when `rule` is broken; key "" means the section itself."""
    present = [k for k in keys if k in rule.keys and values[k] not in (None, ())]  # file order
    if len(present) > 1:
        other = ", ".join(repr(k) for k in present[:-1])
        return present[-1], f"cannot be combined with {other} (use only one)"
    if not rule.required or present:
        return None
    if len(rule.keys) == 1:
        only = rule.keys[0]
        return only, "must not be empty" if only in keys else "required key is missing"
    return "", f"exactly one of {', '.join(rule.keys)} is required"
