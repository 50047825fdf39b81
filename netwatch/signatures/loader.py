"""Read and validate the seed files (`seeds/*.yaml`, `seeds/*.tsv`) with file:line errors.

Reuses the config machinery (`netwatch.config.loader`): YAML is composed into nodes that keep
their line numbers, entries are frozen dataclasses whose fields carry their converter (see
`model.py`), and every problem is a `ConfigError` whose `str()` is one line
`FILE:LINE: key.path: message`. On top of that, this module checks what is special to seeds:

- the header: every file starts with `#` comment lines that contain `snapshot: YYYY-MM-DD`
  and `sources:`, and name every `[KEY]` source an entry cites;
- the top level: one mapping key holding the list of entries, whose `id`s are unique;
- values: DNS names and suffixes, hex bytes, ASCII needles, byte and text regexes (compiled
  here; a regex that matches the empty input is refused), confidences, rule ids;
- the TSV form (OUI table): a header row naming the columns, one parser per column.

Reads no netwatch config. Known limits: the first error ends validation (one error per run);
the rule-id vocabulary is the DESIGN.md contract table, copied in `RULE_IDS`.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from netwatch.config.errors import TOP, ConfigError
from netwatch.config.loader import (
    Conv,
    Ctx,
    child,
    compose,
    describe,
    expect,
    is_null,
    items,
    list_of,
    section,
    text,
    typed,
)
from netwatch.config.values import choice, integer, string
from netwatch.seedstore import stored

if TYPE_CHECKING:  # PyYAML is imported where nodes are read (netwatch.config.loader)
    from yaml.nodes import Node

CONFIDENCES = ("high", "med", "low", "guess")
# The stable rule ids of DESIGN.md ("Rule ids" table).
RULE_IDS = (
    "cloud_registration",
    "cloud_enabled",
    "unexpected_egress",
    "denied_country",
    "outbound_stream",
    "nat_traversal",
    "upnp_port_mapping",
    "rogue_dns",
    "inbound_access",
    "audio_stream",
    "unmanaged_device",
    "new_destination",
    "capture_loss",
)
MAX_NAME_CHARS = 253
# The checks of seed text, as pattern sources: they are compiled by `regex` at first use
# (reading and checking seed files), not at import, since a start that finds its seeds
# in the seed store checks no seed text.
SLUG_RE = r"[a-z0-9]+(?:-[a-z0-9]+)*"
LABEL_RE = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
HEX_RE = r"[0-9A-Fa-f]{2}(?: ?[0-9A-Fa-f]{2})*"
CITE_RE = r"\[([A-Z0-9][A-Z0-9-]*)\]"
DEFINE_RE = r"^#\s+\[([A-Z0-9][A-Z0-9-]*)\]\s+\S"
SNAPSHOT_RE = r"^#\s*snapshot:\s*(\d{4}-\d{2}-\d{2})\b"
SOURCES_RE = r"^#\s*sources:"


@functools.cache
def regex(source: str) -> re.Pattern[str]:
    """``source`` compiled, once per process (the module's checks compile at first use)."""
    return re.compile(source)


# ---------------------------------------------------------------- value converters


def slug(node: Node, ctx: Ctx, path: str) -> str:
    """A slug (lower-case letters and digits, '-' between): non-empty, checked at load."""
    value: str = typed(node, ctx, path, ("str",), "a string")
    if not value:
        ctx.fail(node, path, "must not be empty")
    if not regex(SLUG_RE).fullmatch(value):
        ctx.fail(
            node, path, f"{value!r} is not a slug (lower-case letters and digits, '-' between)"
        )
    return value


nonempty = string()
free_text = string(empty=True)
confidence = choice(*CONFIDENCES)
rule_id = choice(*RULE_IDS)
proto = choice("tcp", "udp")
port = integer(1, 65535)
offset = integer(0, 65535)
ethertype = integer(0x0600, 0xFFFF)


def is_dns_name(name: str) -> bool:
    """Lower-case labels, no trailing dot, at most 253 characters."""
    labels = name.split(".")
    label = regex(LABEL_RE)
    return len(name) <= MAX_NAME_CHARS and all(label.fullmatch(part) for part in labels)


def dns_name(node: Node, ctx: Ctx, path: str) -> str:
    """An exact DNS name as seen on the wire, written in lower case without a trailing dot."""
    value = text(node, ctx, path)
    if not is_dns_name(value):
        ctx.fail(node, path, f"{value!r} is not a lower-case DNS name (no trailing dot)")
    return value


def dns_suffix(node: Node, ctx: Ctx, path: str) -> str:
    """`.zone.tld`: matches every name below the zone (not the zone itself); 2+ labels."""
    value = text(node, ctx, path)
    rest = value[1:]
    if not value.startswith(".") or not is_dns_name(rest) or "." not in rest:
        message = f"{value!r} is not a DNS suffix ('.' then 2 or more lower-case labels)"
        ctx.fail(node, path, message)
    return value


def hex_bytes(node: Node, ctx: Ctx, path: str) -> bytes:
    """Hex digits in pairs, optionally one space between bytes: `9E BA AC E9` or `9EBAACE9`."""
    value = text(node, ctx, path, "hex bytes")
    if not regex(HEX_RE).fullmatch(value):
        message = f"{value!r} is not hex bytes (pairs of 0-9/A-F, one space between bytes)"
        ctx.fail(node, path, message)
    return bytes.fromhex(value)


def ascii_bytes(node: Node, ctx: Ctx, path: str) -> bytes:
    """A non-empty printable-ASCII needle, as bytes."""
    value: str = typed(node, ctx, path, ("str",), "a string")
    if not value or not all(" " <= c <= "~" for c in value):
        ctx.fail(node, path, f"{value!r} is not non-empty printable ASCII (use hex for bytes)")
    return value.encode("ascii")


def compile_regex(value: str, as_bytes: bool) -> re.Pattern[Any]:
    """Compile a seed regex; ValueError with a one-line reason when it is unusable."""
    if as_bytes and not value.isascii():
        raise ValueError("a payload regex must be ASCII (write bytes as \\xNN)")
    try:
        pattern: re.Pattern[Any] = re.compile(value.encode("ascii") if as_bytes else value)
    except re.error as exc:
        raise ValueError(f"bad regex: {exc.msg} at position {exc.pos}") from None
    if pattern.search(b"" if as_bytes else "") is not None:
        raise ValueError("regex matches empty input, so it would match everything")
    return pattern


def regex_bytes(node: Node, ctx: Ctx, path: str) -> re.Pattern[bytes]:
    """A regex over payload bytes, written as ASCII text (`\\xNN` for other bytes)."""
    value: str = typed(node, ctx, path, ("str",), "a string")
    try:
        return compile_regex(value, as_bytes=True)
    except ValueError as exc:
        ctx.fail(node, path, str(exc))


def multicast(node: Node, ctx: Ctx, path: str) -> str:
    """An IPv4 or IPv6 multicast group address."""
    value = text(node, ctx, path)
    try:
        ok = ipaddress.ip_address(value).is_multicast
    except ValueError:
        ok = False
    if not ok:
        ctx.fail(node, path, f"{value!r} is not a multicast IP address")
    return value


def one_or_many(conv: Conv) -> Conv:
    """One mapping (a 1-tuple) or a non-empty list of them."""
    many = list_of(conv)

    def run(node: Node, ctx: Ctx, path: str) -> tuple[Any, ...]:
        from yaml.nodes import SequenceNode  # noqa: PLC0415 - see the TYPE_CHECKING import

        if isinstance(node, SequenceNode):
            values: tuple[Any, ...] = many(node, ctx, path)
            if not values:
                ctx.fail(node, path, "must not be empty")
            return values
        return (conv(node, ctx, path),)

    return run


def first_duplicate(values: Sequence[Any]) -> Any | None:
    """The first value that occurs twice, else None."""
    seen: set[Any] = set()
    for value in values:
        if value in seen:
            return value
        seen.add(value)
    return None


# ---------------------------------------------------------------- headers and sources


@dataclass(frozen=True, slots=True)
class Header:
    """What a seed file's leading comment says: snapshot date and the source keys it names."""

    snapshot: date
    source_keys: frozenset[str]


def header_lines(text: str, chunk: int = 4096) -> list[str]:
    """The leading lines of ``text`` that start with ``#`` (as ``str.splitlines`` splits
    them): only the start of the text is split, a chunk at a time, since a header is a few
    lines and a start reads the header of every seed file (the OUI table has 2,000 lines)."""
    size = chunk
    while True:
        lines = text[:size].splitlines()
        for i, line in enumerate(lines):
            if not line.startswith("#"):  # a line cut short at the chunk's end starts alike
                return lines[:i]
        if size >= len(text):
            return lines
        size *= 4  # every line starts with '#': the last one may go on past the chunk


def read_header(source: str, file: str) -> Header:
    """Parse the leading `#` lines; a missing header, date or sources line is an error."""
    lines = header_lines(source.removeprefix("\ufeff"))
    if not lines:
        raise ConfigError(file, 1, TOP, "the file must start with a '#' header naming its sources")
    found = [(i, m) for i, line in enumerate(lines, 1) if (m := regex(SNAPSHOT_RE).match(line))]
    if not found:
        raise ConfigError(file, 1, TOP, "the header has no 'snapshot: YYYY-MM-DD' line")
    line_no, match = found[0]
    try:
        snapshot = date.fromisoformat(match.group(1))
    except ValueError:
        raise ConfigError(file, line_no, TOP, f"bad snapshot date {match.group(1)!r}") from None
    if not any(regex(SOURCES_RE).match(line) for line in lines):
        raise ConfigError(file, 1, TOP, "the header has no 'sources:' line")
    keys = frozenset(m.group(1) for line in lines if (m := regex(DEFINE_RE).match(line)))
    return Header(snapshot, keys)


def uncited(source: str, header: Header) -> str | None:
    """The first `[KEY]` that `source` cites and the header does not name, else None."""
    return next((k for k in regex(CITE_RE).findall(source) if k not in header.source_keys), None)


def _check_citations(seq: Node, ctx: Ctx, path: str, header: Header) -> None:
    from yaml.nodes import ScalarNode  # noqa: PLC0415 - see the TYPE_CHECKING import

    for i, item in enumerate(seq.value):
        node = child(item, "source")
        if isinstance(node, ScalarNode):
            missing = uncited(str(node.value), header)
            if missing is not None:
                message = f"cites [{missing}], which the file header does not name"
                ctx.fail(node, f"{path}[{i}].source", message)


def _check_unique_across(seq: Node, ctx: Ctx, path: str, field: str) -> None:
    """A list-valued `field` whose values must be unique over all entries of the file."""
    from yaml.nodes import SequenceNode  # noqa: PLC0415 - see the TYPE_CHECKING import

    first: dict[str, int] = {}
    for i, item in enumerate(seq.value):
        values = child(item, field)
        if not isinstance(values, SequenceNode):
            continue
        for j, node in enumerate(values.value):
            value = str(node.value)
            if value in first:
                message = f"duplicate {value!r} (first on line {first[value]})"
                ctx.fail(node, f"{path}[{i}].{field}[{j}]", message)
            first[value] = node.start_mark.line + 1


# ---------------------------------------------------------------- whole files


def read_text(path: Path) -> tuple[str, str]:
    """(file name for errors, UTF-8 text); unreadable or non-UTF-8 files are errors."""
    file = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(file, 1, TOP, f"cannot read: {exc.strerror or exc}") from None
    try:
        return file, data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(file, line, TOP, f"not UTF-8 text (byte {exc.start})") from None


@stored("yaml_entries")  # parsed ahead of time for the package's seeds (netwatch.seedstore)
def load_yaml_entries(
    path: Path, list_key: str, entry: type[Any], unique_across: tuple[str, ...] = ()
) -> tuple[Any, ...]:
    """Validate a YAML seed file `{list_key: [entry, ...]}` and build its entries."""
    file, source = read_text(path)
    header = read_header(source, file)
    ctx = Ctx(file, path.absolute().parent)
    root = compose(source, file, fast=True)
    from yaml.nodes import MappingNode  # noqa: PLC0415 - loaded by compose

    if not isinstance(root, MappingNode):
        got = "nothing" if root is None or is_null(root) else describe(root)
        line = 1 if root is None else root.start_mark.line + 1
        message = f"expected a mapping with key {list_key!r}, got {got}"
        raise ConfigError(file, line, TOP, message)
    seq: Node | None = None
    for key, knode, vnode in items(root, ctx, ""):
        if key != list_key:
            ctx.fail(knode, key, f"unknown key (the only key here is {list_key!r})")
        seq = vnode
    if seq is None:
        ctx.fail(root, list_key, "required key is missing")
    expect(seq, ctx, list_key, "seq")
    entries: tuple[Any, ...] = list_of(section(entry), unique="id")(seq, ctx, list_key)
    if not entries:
        ctx.fail(seq, list_key, "must not be empty")
    for field in unique_across:
        _check_unique_across(seq, ctx, list_key, field)
    _check_citations(seq, ctx, list_key, header)
    return entries


Parse = Callable[[str], Any]


def load_tsv_rows(
    path: Path, columns: Mapping[str, Parse], unique: str
) -> tuple[Header, list[dict[str, Any]]]:
    """Validate a TSV seed: header comment, a row naming `columns` in order, then data rows.

    Each column's parser raises ValueError with a user-facing message; the key path of an
    error is the column name. Values of the `unique` column must not repeat.
    """
    file, source = read_text(path)
    header = read_header(source, file)
    names = tuple(columns)
    rows: list[dict[str, Any]] = []
    first: dict[Any, int] = {}
    seen_header = False
    for line_no, line in enumerate(source.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        cells = line.split("\t")
        if not seen_header:
            if tuple(cells) != names:
                message = f"expected the column header {' | '.join(names)}"
                raise ConfigError(file, line_no, TOP, message)
            seen_header = True
            continue
        rows.append(_tsv_row(file, line_no, cells, columns, header))
        value = rows[-1][unique]
        if value in first:
            message = f"duplicate {value!r} (first on line {first[value]})"
            raise ConfigError(file, line_no, unique, message)
        first[value] = line_no
    if not rows:
        raise ConfigError(file, 1, TOP, "no data rows")
    return header, rows


def _tsv_row(
    file: str, line_no: int, cells: list[str], columns: Mapping[str, Parse], header: Header
) -> dict[str, Any]:
    if len(cells) != len(columns):
        message = f"expected {len(columns)} tab-separated columns, got {len(cells)}"
        raise ConfigError(file, line_no, TOP, message)
    row: dict[str, Any] = {}
    for (name, parse), cell in zip(columns.items(), cells, strict=True):
        try:
            row[name] = parse(cell)
        except ValueError as exc:
            raise ConfigError(file, line_no, name, str(exc)) from None
    missing = uncited(str(row.get("source", "")), header)
    if missing is not None:
        message = f"cites [{missing}], which the file header does not name"
        raise ConfigError(file, line_no, "source", message)
    return row


def default_seeds_dir() -> Path:
    """`<checkout>/seeds` next to the package, else `seeds/` installed inside the package."""
    package = Path(__file__).resolve().parent.parent
    candidates = (package.parent / "seeds", package / "seeds")
    for candidate in candidates:
        if (candidate / "cloud_endpoints.yaml").is_file():
            return candidate
    tried = ", ".join(str(c) for c in candidates)
    raise ConfigError(str(candidates[0]), 1, TOP, f"no seed files found (tried {tried})")


# ---------------------------------------------------------------- TSV cell parsers

OUI_RE = r"[0-9A-F]{2}(?::[0-9A-F]{2}){2}"  # compiled by `regex` at first use


def parse_oui(cell: str) -> str:
    """`AA:BB:CC`, upper-case hex."""
    if not regex(OUI_RE).fullmatch(cell):
        raise ValueError(f"{cell!r} is not an OUI written AA:BB:CC (upper-case hex)")
    return cell


def parse_yes_no(cell: str) -> bool:
    if cell not in ("yes", "no"):
        raise ValueError(f"{cell!r} is not one of: yes, no")
    return cell == "yes"


def parse_nonempty(cell: str) -> str:
    if not cell.strip() or cell != cell.strip():
        raise ValueError(f"{cell!r} must be non-empty text without surrounding spaces")
    return cell


def parse_confidence(cell: str) -> str:
    if cell not in CONFIDENCES:
        raise ValueError(f"{cell!r} is not one of: {', '.join(CONFIDENCES)}")
    return cell


def snapshot_of(path: Path) -> date:
    """The `snapshot:` date of a seed file's header."""
    file, source = read_text(path)
    return read_header(source, file).snapshot
