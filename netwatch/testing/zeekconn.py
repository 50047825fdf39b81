"""Compare netwatch's flow records with Zeek's own conn.log baselines, field by field.

The corpus (``../shared/corpus/zeek``, BSD-3-Clause, see its ``MANIFEST.md``) pairs captures
from Zeek's regression suite with the ``conn.log`` Zeek's tests expect for them. For every
baseline the manifest lists, :func:`compare_corpus` replays the trace through a
:class:`netwatch.pipeline.Pipeline` (default config, :class:`NullGeo`, a seeded
:class:`UidSource`: :func:`replay_trace`), pairs Zeek's connections with netwatch's flow
records (:func:`match_rows`) and counts, per field, how many paired values agree.

Reading the baselines (:func:`read_conn_log`): the ASCII format (``#fields`` header,
tab-separated, ``-`` unset, ``(empty)`` empty) and ``zeek-cut -m`` output (one header line
of column names); the ``### BTest`` line is skipped and btest's masked ``ts``
(``XXXXXXXXXX.XXXXXX``) is read as unknown.

Pairing (documented rule, the same for every baseline):

* Baselines with addresses: Zeek's rows, in ``ts`` order when ``ts`` is known, else in file
  order (Zeek writes a connection when it ends, so repeated 5-tuples appear in time order),
  each take the earliest unpaired netwatch record whose ends agree with the columns the
  baseline has -- first with every address and port (either orientation) and the ``proto``,
  then with the addresses and one common port (ICMP: the type in one port column and
  Zeek's counterpart or code in the other), then with the addresses alone.
* Baselines without addresses (``zeek-cut`` with ``uid``/``ts`` only): btest seeds Zeek's
  uid generator, so a uid names the order in which Zeek created the connection
  (:data:`BTEST_UIDS`, the prefix of that sequence read from baselines with ``ts``); the
  n-th created connection pairs with netwatch's n-th record by first-packet time. Rows whose
  uid is not in the known prefix follow in ``ts`` or file order.

Compared fields (:data:`COMPARED`) are those a baseline has among: ``id.orig_h``,
``id.orig_p``, ``id.resp_h``, ``id.resp_p``, ``proto``, ``ip_proto``, ``service`` (as a set),
``duration`` (Zeek's 6 decimals, tolerance 1e-6; Zeek leaves it unset for a zero duration,
and then ``orig_bytes``/``resp_bytes`` too), ``orig_bytes``, ``resp_bytes``, ``conn_state``,
``missed_bytes``, ``history``, ``orig_pkts``, ``orig_ip_bytes``, ``resp_pkts``,
``resp_ip_bytes``. Not compared: ``ts`` (masked by btest), ``uid`` (random), ``local_orig``/
``local_resp`` (depend on the site's networks), ``tunnel_parents``, ``inner_vlan``,
``speculative_service``, ``pppoe_session_id`` and the other fields netwatch does not log.

Legitimate differences are the explicit table :data:`LEGITIMATE`: each entry names the field,
the condition and the reason; disagreements it covers are counted separately and are not
held against the agreement percentage.

CLI: ``python -m netwatch.testing.zeekconn [--corpus DIR] [--verbose]`` prints the
per-field table and, with ``--verbose``, every disagreement (trace, uid, field, Zeek's value
and netwatch's) and every unpaired connection. Reads no netwatch config file (the defaults).
Known limits: Zeek flags a test used (``-b`` bare mode with fewer analyzers, ``-C``, values
set on the command line) are shown in the manifest but not emulated; a trace read through
``zcat`` is read here as the gzip file it is.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, NamedTuple

from netwatch.capture.files import open_capture
from netwatch.config import Config
from netwatch.enrich.geo import NullGeo
from netwatch.flow.ids import UidSource
from netwatch.pipeline import Pipeline

#: Default corpus location, relative to the repository (``../shared/corpus/zeek``).
DEFAULT_CORPUS: Final = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "zeek"

UNSET: Final = "-"
EMPTY: Final = "(empty)"
MASKED_TS: Final = re.compile(r"X+\.X+")

#: The first uids of btest's seeded generator, in the order Zeek hands them out (read from
#: the corpus baselines whose rows carry ``ts``: quic-go_quic-go.retry's three connections).
BTEST_UIDS: Final = ("CHhAvVGS1DHFjwGM9", "ClEkJM2Vm5giqnMf4h", "C4J4Th3PJpwUYZZ6gc")

#: Fields compared when the baseline has them, in table order.
COMPARED: Final = (
    "id.orig_h",
    "id.orig_p",
    "id.resp_h",
    "id.resp_p",
    "proto",
    "ip_proto",
    "service",
    "duration",
    "orig_bytes",
    "resp_bytes",
    "conn_state",
    "missed_bytes",
    "history",
    "orig_pkts",
    "orig_ip_bytes",
    "resp_pkts",
    "resp_ip_bytes",
)
_ADDRESS_FIELDS: Final = ("id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p")
DURATION_TOLERANCE: Final = 1e-6

Row = dict[str, str]
Record = dict[str, Any]


class ManifestEntry(NamedTuple):
    """One row of the manifest's baseline table."""

    test: str
    trace: str
    baseline: str
    zeek_run: str
    fmt: str


class ConnLog(NamedTuple):
    """A conn.log baseline: its column names and rows (values as Zeek wrote them)."""

    fields: tuple[str, ...]
    rows: list[Row]


@dataclass(frozen=True, slots=True)
class LegitimateDifference:
    """A documented reason why netwatch may differ from Zeek on one field."""

    field: str  # a compared field, or ANY_FIELD (then it also covers unpaired connections)
    condition: str
    reason: str
    applies: Callable[[ManifestEntry, Row | None, Record | None], bool]


ANY_FIELD: Final = "*"


#: Analyzers Zeek has that a camera-traffic monitor does not need (service names as Zeek
#: logs them). A ``service`` disagreement where Zeek names only these beyond what netwatch
#: names is legitimate.
NOT_NEEDED_SERVICES: Final = frozenset(
    {
        "ayiya",
        "dce_rpc",
        "gnutella",
        "gridftp",
        "gridftp-data",
        "gssapi",
        "irc",
        "krb",
        "krb_tcp",
        "ldap",
        "ldap_tcp",
        "ldap_udp",
        "modbus",
        "mysql",
        "ntlm",
        "pop3",
        "postgresql",
        "rdp",
        "rdpeudp",
        "redis",
        "spicy_ldap_tcp",
        "syslog",
        "syslog_tcp",
        "teredo",
        "websocket",
    }
)


def _services(value: object) -> frozenset[str]:
    if value is None or value in (UNSET, EMPTY, ""):
        return frozenset()
    return frozenset(str(value).split(","))


def _only_unneeded_services(entry: ManifestEntry, z: Row | None, nw: Record | None) -> bool:
    if z is None or nw is None:
        return False
    zs, ns = _services(z.get("service")), _services(nw.get("service"))
    return bool(zs - ns) and (zs - ns) <= NOT_NEEDED_SERVICES and ns <= zs


def _analyzer_not_loaded(entry: ManifestEntry, z: Row | None, nw: Record | None) -> bool:
    """Zeek ran bare (``-b``) and did not load the scripts of the services netwatch adds."""
    if "`-b`" not in entry.zeek_run or z is None or nw is None:
        return False
    zs, ns = _services(z.get("service")), _services(nw.get("service"))
    extra = ns - zs
    return bool(extra) and zs <= ns and not any(_loads(entry, s) for s in extra)


def _loads(entry: ManifestEntry, service: str) -> bool:
    return re.search(rf"\bprotocols/{re.escape(service)}\b", entry.zeek_run) is not None


def _bad_checksum(entry: ManifestEntry, z: Row | None, nw: Record | None) -> bool:
    """Zeek ran without ``-C`` and marked bad checksums (``C``/``c``) on this connection."""
    history = "" if z is None else z.get("history", "")
    return "`-C`" not in entry.zeek_run and ("C" in history or "c" in history)


def _gridftp_data(entry: ManifestEntry, z: Row | None, nw: Record | None) -> bool:
    return z is not None and "gridftp-data" in _services(z.get("service"))


def _bare_without_server_ports(entry: ManifestEntry, z: Row | None, nw: Record | None) -> bool:
    """A bare run that loaded no protocol analyzer, and the two ends are swapped."""
    run = entry.zeek_run
    if "`-b`" not in run or re.search(r"base/protocols/(?!conn\b)", run) or z is None or nw is None:
        return False
    ends = ("id.orig_h", "id.resp_h")
    if not all(k in z for k in ends):
        return False
    return z["id.orig_h"] == str(nw.get("id.resp_h")) and z["id.resp_h"] == str(nw.get("id.orig_h"))


def _capped_timer_expiry(entry: ManifestEntry, z: Row | None, nw: Record | None) -> bool:
    return entry.baseline.endswith("core.expire-all-timers/conn-limited.log")


def _analysis_partial_only(entry: ManifestEntry, z: Row | None, nw: Record | None) -> bool:
    """The histories differ only by Zeek's ``x``/``X`` (connection analysis partial)."""
    if z is None or nw is None:
        return False
    zeek = str(z.get("history", "")).replace("X", "").replace("x", "")
    return zeek != z.get("history") and zeek == str(nw.get("history") or "")


def _option_on_command_line(entry: ManifestEntry, z: Row | None, nw: Record | None) -> bool:
    """The test set an analyzer option on Zeek's command line (a non-default limit)."""
    return "on the command line" in entry.zeek_run


def _test_signature(entry: ManifestEntry, z: Row | None, nw: Record | None) -> bool:
    """A signature test: Zeek names services of the test's own signatures too."""
    if not entry.test.startswith("signatures.") or z is None or nw is None:
        return False
    return _services(nw.get("service")) < _services(z.get("service"))


LEGITIMATE: Final[tuple[LegitimateDifference, ...]] = (
    LegitimateDifference(
        "service",
        "Zeek names, beyond netwatch's services, only analyzers in NOT_NEEDED_SERVICES",
        "analyzers for protocols no camera site depends on (directory, database, legacy chat, "
        "industrial and mail protocols); netwatch does not parse them",
        _only_unneeded_services,
    ),
    LegitimateDifference(
        "service",
        "Zeek ran in bare mode (-b) without the scripts of the services netwatch names beyond "
        "Zeek's",
        "a bare Zeek run loads only the analyzers its test lists; netwatch always runs its own",
        _analyzer_not_loaded,
    ),
    LegitimateDifference(
        ANY_FIELD,
        "Zeek ran without -C and its history has C/c (bad checksums)",
        "Zeek drops packets with bad checksums unless run with -C; netwatch does not verify "
        "checksums (on a sensor with checksum offload its own packets all look bad, and the "
        "check costs throughput on every packet)",
        _bad_checksum,
    ),
    LegitimateDifference(
        ANY_FIELD,
        "Zeek's service includes gridftp-data",
        "Zeek's GridFTP script stops all processing of a data connection once it is "
        "identified (skip_further_processing), so Zeek's counters stop there",
        _gridftp_data,
    ),
    LegitimateDifference(
        ANY_FIELD,
        "bare run (-b) that loaded no protocol analyzer, ends swapped against netwatch's",
        "likely_server_ports is filled by the analyzer scripts; a bare run without them has "
        "no server ports to orient a mid-stream connection by, netwatch always has Zeek's "
        "default set",
        _bare_without_server_ports,
    ),
    LegitimateDifference(
        "history",
        "the histories differ only by Zeek's x/X (connection analysis partial)",
        "Zeek marks a connection whose protocol analyzer stopped at one of its limits (line "
        "length, MIME depth, DNS query count, key-exchange size, tunnel changes); netwatch's "
        "parsers read only a flow's first messages by design, so it has no such state to mark",
        _analysis_partial_only,
    ),
    LegitimateDifference(
        ANY_FIELD,
        "the test set an analyzer option on Zeek's command line",
        "a non-default Zeek option (e.g. dns_max_queries=3) changes what Zeek's analyzer "
        "accepts; netwatch is compared with Zeek's defaults",
        _option_on_command_line,
    ),
    LegitimateDifference(
        "service",
        "a signatures.* test, Zeek naming a service of the test's own signature",
        "the test loads a signature that adds its own service name (e.g. ftp,blah)",
        _test_signature,
    ),
    LegitimateDifference(
        ANY_FIELD,
        "baseline core.expire-all-timers/conn-limited.log",
        "that test shows Zeek deferring timer expiry (max_timer_expires) so a connection "
        "outlives its inactivity timeout; the same test's conn-all.log has the expiry netwatch "
        "implements",
        _capped_timer_expiry,
    ),
)


@dataclass(slots=True)
class FieldTally:
    """Per-field counts over all paired connections."""

    compared: int = 0
    agree: int = 0
    legitimate: int = 0

    @property
    def disagree(self) -> int:
        """Disagreements not covered by a legitimate difference."""
        return self.compared - self.agree - self.legitimate

    @property
    def percent(self) -> float:
        """Agreement in percent, legitimate differences left out of the count."""
        counted = self.compared - self.legitimate
        return 100.0 if counted == 0 else 100.0 * self.agree / counted


class Disagreement(NamedTuple):
    """One field of one paired connection on which the two differ."""

    trace: str
    uid: str
    field: str
    zeek: str
    netwatch: str
    legitimate: bool


class Unpaired(NamedTuple):
    """A connection only one side logs (``row``: Zeek's row or netwatch's record)."""

    trace: str
    row: dict[str, Any]
    legitimate: bool


@dataclass(slots=True)
class Comparison:
    """Everything :func:`compare_corpus` measured."""

    tallies: dict[str, FieldTally] = field(default_factory=dict)
    disagreements: list[Disagreement] = field(default_factory=list)
    zeek_only: list[Unpaired] = field(default_factory=list)
    netwatch_only: list[Unpaired] = field(default_factory=list)
    paired: int = 0
    baselines: int = 0

    @property
    def zeek_only_counted(self) -> int:
        """Connections only Zeek logs, legitimate differences left out."""
        return sum(1 for u in self.zeek_only if not u.legitimate)

    @property
    def netwatch_only_counted(self) -> int:
        """Connections only netwatch logs, legitimate differences left out."""
        return sum(1 for u in self.netwatch_only if not u.legitimate)


# -- reading --------------------------------------------------------------------------------


def read_manifest(corpus: Path) -> list[ManifestEntry]:
    """The baselines the manifest lists (its ``## Baselines`` table)."""
    out: list[ManifestEntry] = []
    in_table = False
    for line in (corpus / "MANIFEST.md").read_text().splitlines():
        if line.startswith("## "):
            in_table = line.strip() == "## Baselines"
            continue
        if not in_table or not line.startswith("| ") or line.startswith("| ---"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if len(cells) < 6 or cells[0] == "test":
            continue
        out.append(
            ManifestEntry(cells[0], cells[1].strip("`"), cells[2].strip("`"), cells[3], cells[4])
        )
    return out


def read_conn_log(path: Path) -> ConnLog:
    """A conn.log baseline in Zeek's ASCII format or ``zeek-cut -m`` form."""
    fields: tuple[str, ...] = ()
    rows: list[Row] = []
    for line in path.read_text().splitlines():
        if not line or line.startswith("###"):
            continue
        if line.startswith("#"):
            if line.startswith("#fields\t"):
                fields = tuple(line.split("\t")[1:])
            continue
        values = line.split("\t")
        if not fields:  # zeek-cut -m: the first line names the columns
            fields = tuple(values)
            continue
        rows.append(dict(zip(fields, values, strict=False)))
    return ConnLog(fields, rows)


def replay_trace(trace: Path, uid_seed: int = 3) -> list[Record]:
    """Run one capture through a default pipeline (no GeoIP, seeded uids); its flow records
    in the order they were emitted."""
    records: list[Record] = []
    pipe = Pipeline(Config.default(), records.append, geo=NullGeo(), uids=UidSource(uid_seed))
    pipe.run_capture(open_capture(trace))
    pipe.finish()
    return records


# -- rendering netwatch's values as Zeek writes them ----------------------------------------


def netwatch_value(rec: Record, name: str) -> str:
    """A netwatch record's field rendered as Zeek's conn.log would write it."""
    value = rec.get(name)
    if name == "duration" or name in ("orig_bytes", "resp_bytes"):
        if not rec.get("duration"):
            return UNSET  # Zeek leaves these unset for a zero-length connection
        return f"{float(value or 0):.6f}" if name == "duration" else str(value)
    if name == "history":
        return str(value) if value else UNSET
    if value is None or value == "":
        return UNSET
    return str(value)


def agrees(name: str, zeek: str, ours: str) -> bool:
    """Field equality with Zeek's conventions (service as a set, duration within 1e-6)."""
    if name == "service":
        return _services(zeek) == _services(ours)
    if name == "duration" and UNSET not in (zeek, ours):
        return abs(float(zeek) - float(ours)) <= DURATION_TOLERANCE + 1e-9
    return zeek == ours


# -- pairing --------------------------------------------------------------------------------


def _ends(row: Row | Record, orig: bool) -> tuple[str | None, str | None]:
    side = "orig" if orig else "resp"
    h, p = row.get(f"id.{side}_h"), row.get(f"id.{side}_p")
    return (None if h is None else str(h), None if p is None else str(p))


def _fits(z: Row, rec: Record, level: int) -> bool:
    """Does a netwatch record fit a Zeek row's ends at a matching level (0 strict, 1 one
    common port, 2 addresses only)? Columns the baseline lacks match anything."""
    if "proto" in z and z["proto"] != str(rec.get("proto")):
        return False
    zo, zr = _ends(z, True), _ends(z, False)
    no, nr = _ends(rec, True), _ends(rec, False)
    for a, b in ((no, nr), (nr, no)):
        hosts = all(zh is None or zh == nh for zh, nh in ((zo[0], a[0]), (zr[0], b[0])))
        if not hosts:
            continue
        if level == 2:
            return True
        zports = [p for p in (zo[1], zr[1]) if p is not None]
        if level == 0 and all(
            zp is None or zp == np_ for zp, np_ in ((zo[1], a[1]), (zr[1], b[1]))
        ):
            return True
        if level == 1 and (not zports or set(zports) & {a[1], b[1]}):
            return True
    return False


def _zeek_order(rows: Sequence[Row]) -> list[int]:
    def key(i: int) -> tuple[float, int]:
        ts = rows[i].get("ts", "")
        return (float(ts), i) if ts and not MASKED_TS.fullmatch(ts) else (float("inf"), i)

    return sorted(range(len(rows)), key=key)


class Pairing(NamedTuple):
    """The result of :func:`match_rows`: pairs (row, record) and the unpaired of each side."""

    pairs: list[tuple[Row, Record]]
    zeek_only: list[Row]
    netwatch_only: list[Record]


def match_rows(log: ConnLog, records: Sequence[Record]) -> Pairing:
    """Pair Zeek's rows with netwatch's records (rules in the module docstring)."""
    by_time = sorted(records, key=lambda r: float(r["ts"]))
    free = list(range(len(by_time)))
    pairs: list[tuple[Row, Record]] = []
    zeek_only: list[Row] = []
    if any(f in log.fields for f in _ADDRESS_FIELDS):
        order = _zeek_order(log.rows)
        chosen: dict[int, int] = {}
        for level in (0, 1, 2):
            for zi in order:
                if zi in chosen:
                    continue
                for ni in free:
                    if _fits(log.rows[zi], by_time[ni], level):
                        chosen[zi] = ni
                        free.remove(ni)
                        break
        for zi in range(len(log.rows)):
            if zi in chosen:
                pairs.append((log.rows[zi], by_time[chosen[zi]]))
            else:
                zeek_only.append(log.rows[zi])
    else:
        known = [r for r in log.rows if r.get("uid") in BTEST_UIDS]
        known.sort(key=lambda r: BTEST_UIDS.index(r["uid"]))
        rest = [log.rows[i] for i in _zeek_order(log.rows) if log.rows[i] not in known]
        for row in known:
            rank = BTEST_UIDS.index(row["uid"])
            if rank < len(by_time) and rank in free:
                pairs.append((row, by_time[rank]))
                free.remove(rank)
            else:
                zeek_only.append(row)
        for row in rest:
            if free:
                pairs.append((row, by_time[free.pop(0)]))
            else:
                zeek_only.append(row)
    return Pairing(pairs, zeek_only, [by_time[i] for i in free])


# -- comparing ------------------------------------------------------------------------------


def compare_pair(entry: ManifestEntry, z: Row, rec: Record, out: Comparison) -> None:
    """Tally every compared field the baseline row has."""
    for name in COMPARED:
        if name not in z:
            continue
        tally = out.tallies.setdefault(name, FieldTally())
        tally.compared += 1
        zv, nv = z[name], netwatch_value(rec, name)
        if agrees(name, zv, nv):
            tally.agree += 1
            continue
        legit = any(d.field in (name, ANY_FIELD) and d.applies(entry, z, rec) for d in LEGITIMATE)
        if legit:
            tally.legitimate += 1
        out.disagreements.append(
            Disagreement(entry.trace, z.get("uid", str(rec.get("uid"))), name, zv, nv, legit)
        )


def _unpaired_legit(entry: ManifestEntry, z: Row | None, rec: Record | None) -> bool:
    return any(d.field == ANY_FIELD and d.applies(entry, z, rec) for d in LEGITIMATE)


def compare_corpus(corpus: Path, entries: Iterable[ManifestEntry] | None = None) -> Comparison:
    """Replay every listed trace (once each) and compare it with each of its baselines."""
    out = Comparison()
    out.tallies = {name: FieldTally() for name in COMPARED}
    cache: dict[str, list[Record]] = {}
    for entry in read_manifest(corpus) if entries is None else entries:
        log = read_conn_log(corpus / entry.baseline)
        if entry.trace not in cache:
            cache[entry.trace] = replay_trace(corpus / "traces" / entry.trace)
        pairing = match_rows(log, cache[entry.trace])
        out.baselines += 1
        out.paired += len(pairing.pairs)
        for z, rec in pairing.pairs:
            compare_pair(entry, z, rec, out)
        out.zeek_only.extend(
            Unpaired(entry.trace, r, _unpaired_legit(entry, r, None)) for r in pairing.zeek_only
        )
        out.netwatch_only.extend(
            Unpaired(entry.trace, r, _unpaired_legit(entry, None, r)) for r in pairing.netwatch_only
        )
    return out


def format_table(result: Comparison) -> str:
    """The per-field agreement table, then the unpaired counts."""
    lines = [f"{'field':<14} {'compared':>8} {'agree':>7} {'legit':>6} {'differ':>7} {'agree%':>8}"]
    for name, t in result.tallies.items():
        if t.compared:
            lines.append(
                f"{name:<14} {t.compared:>8} {t.agree:>7} {t.legitimate:>6} "
                f"{t.disagree:>7} {t.percent:>7.1f}%"
            )
    lines.append(f"baselines {result.baselines}, paired connections {result.paired}")
    for label, counted, every in (
        ("Zeek logs it, netwatch does not", result.zeek_only_counted, result.zeek_only),
        ("netwatch logs it, Zeek does not", result.netwatch_only_counted, result.netwatch_only),
    ):
        lines.append(f"{label}: {counted} (legitimate: {len(every) - counted})")
    return "\n".join(lines)


def _ends_text(row: Row | Record) -> str:
    parts = [str(row.get(k, "?")) for k in ("proto", *_ADDRESS_FIELDS)]
    return " ".join(parts)


def format_details(result: Comparison) -> str:
    """Every disagreement and every unpaired connection, one per line."""
    lines = []
    for d in result.disagreements:
        mark = " (legitimate)" if d.legitimate else ""
        lines.append(f"{d.trace}\t{d.uid}\t{d.field}\tzeek={d.zeek}\tnetwatch={d.netwatch}{mark}")
    for label, unpaired in (
        ("ZEEK ONLY", result.zeek_only),
        ("NETWATCH ONLY", result.netwatch_only),
    ):
        for u in unpaired:
            mark = " (legitimate)" if u.legitimate else ""
            history = u.row.get("history", "")
            lines.append(f"{u.trace}\t{label}\t{_ends_text(u.row)}\t{history}{mark}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m netwatch.testing.zeekconn",
        description="per-field agreement of netwatch's flow records with Zeek's conn.log",
    )
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--verbose", action="store_true", help="print every disagreement")
    args = parser.parse_args(argv)
    if not (args.corpus / "MANIFEST.md").is_file():
        print(f"no MANIFEST.md in {args.corpus}", file=sys.stderr)
        return 2
    result = compare_corpus(args.corpus)
    if args.verbose:
        print(format_details(result))
    print(format_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
