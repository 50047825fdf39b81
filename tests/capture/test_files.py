"""Capture files: format detection, gzip, errors, chaining, and the real third-party corpus."""

from __future__ import annotations

import gzip
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import dpkt
import pytest

from netwatch.capture import files
from netwatch.capture.files import CaptureError, CaptureFile, iter_captures, open_capture
from netwatch.capture.pcap import Record
from tests.capture.builders import epb, frame_of, idb, pcap_file, pcap_record, shb, spb
from tests.conftest import corpus_file

RECORDS = [(1_700_000_000 + i, i * 1000, frame_of(i, 60 + 7 * i), 60 + 7 * i) for i in range(6)]
PCAPNG = (
    shb()
    + idb(1)
    + idb(113, tsresol=9)
    + epb(0, 1_700_000_000_000_001, frame_of(0))
    + epb(1, 1_700_000_000_000_000_002, frame_of(1), 1500)
    + spb(frame_of(2))
    + epb(0, 1_700_000_000_000_003, frame_of(3, 61))
)
PCAPNG_LAST = epb(0, 1_700_000_000_000_003, frame_of(3, 61))


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def read(path: Path) -> tuple[list[Record], CaptureFile]:
    with open_capture(path) as capture:
        return list(capture.packets()), capture


# --- synthetic files -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("order", "nanos", "fmt"),
    [("<", False, "pcap"), (">", False, "pcap"), ("<", True, "pcap-ns"), (">", True, "pcap-ns")],
)
def test_pcap_variants_detected_by_magic(tmp_path: Path, order: str, nanos: bool, fmt: str) -> None:
    path = write(tmp_path, "capture.pcapng", pcap_file(RECORDS, order=order, nanos=nanos))
    got, capture = read(path)  # the misleading name does not matter
    assert (capture.format, capture.compressed) == (fmt, False)
    assert [(wl, fr) for _, _, wl, fr in got] == [(wl, fr) for _, _, fr, wl in RECORDS]
    tick = 1e-9 if nanos else 1e-6
    assert [ts for ts, *_ in got] == pytest.approx([s + f * tick for s, f, _, _ in RECORDS])
    assert capture.stats.records == len(RECORDS)


def test_pcapng_file(tmp_path: Path) -> None:
    got, capture = read(write(tmp_path, "capture.pcap", PCAPNG))
    assert capture.format == "pcapng"
    assert [(lt, wl) for _, lt, wl, _ in got] == [(1, 60), (113, 1500), (1, 60), (1, 61)]
    assert got[2][0] == got[1][0] == pytest.approx(1_700_000_000.000000002)


@pytest.mark.parametrize("data", [pcap_file(RECORDS, order=">", nanos=True), PCAPNG])
def test_gzip_wrapped_files_read_like_the_plain_ones(tmp_path: Path, data: bytes) -> None:
    plain, _ = read(write(tmp_path, "plain", data))
    half = len(data) // 2
    for name, packed in [
        ("one.gz", gzip.compress(data)),
        ("two-members.gz", gzip.compress(data[:half]) + gzip.compress(data[half:])),
    ]:
        got, capture = read(write(tmp_path, name, packed))
        assert capture.compressed
        assert capture.format == ("pcapng" if data is PCAPNG else "pcap-ns")
        assert got == plain
        assert not capture.stats.truncated_tail


@pytest.mark.parametrize("chunk", [1, 3, 17, 4096])
def test_small_stream_chunks_give_the_same_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    data = pcap_file(RECORDS)
    for source in (data, PCAPNG):
        expected, _ = read(write(tmp_path, "plain", source))
        monkeypatch.setattr(files, "_CHUNK", chunk)
        monkeypatch.setattr(files, "_RAW_CHUNK", chunk)
        got, _ = read(write(tmp_path, "small.gz", gzip.compress(source)))
        assert got == expected
        monkeypatch.setattr(files, "_map", lambda _file: None)  # a file that cannot be mapped
        got, capture = read(write(tmp_path, "unmapped", source))
        assert got == expected
        assert not capture.stats.truncated_tail
        monkeypatch.undo()


def test_truncated_gzip_stream(tmp_path: Path) -> None:
    data = pcap_file(RECORDS)
    plain, _ = read(write(tmp_path, "plain", data))
    got, capture = read(write(tmp_path, "cut.gz", gzip.compress(data)[:-30]))
    assert capture.stats.truncated_tail
    assert got == plain[: len(got)]


def test_corrupt_gzip_stream_is_reported_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files, "_RAW_CHUNK", 1024)  # the damage is met after the first chunks
    many = [(i, 0, frame_of(i, 200 + i % 50), 300) for i in range(2000)]
    packed = bytearray(gzip.compress(pcap_file(many)))
    packed[len(packed) // 2 : len(packed) // 2 + 64] = b"\xff" * 64
    got, capture = read(write(tmp_path, "corrupt.gz", bytes(packed)))
    assert capture.stats.read_error.startswith("corrupt gzip data")
    assert 0 < len(got) < len(many)
    assert [fr for *_, fr in got] == [fr for _, _, fr, _ in many[: len(got)]]


@pytest.mark.parametrize("kind", ["pcap", "pcapng", "pcap.gz"])
def test_cut_at_every_offset_of_the_last_record(tmp_path: Path, kind: str) -> None:
    if kind == "pcapng":
        data, last_len = PCAPNG, len(PCAPNG_LAST)
    else:
        data, last_len = pcap_file(RECORDS), len(pcap_record(*RECORDS[-1]))
    complete, _ = read(write(tmp_path, "full", data))
    for cut in range(len(data) - last_len, len(data)):
        cut_data = data[:cut]
        if kind == "pcap.gz":
            cut_data = gzip.compress(cut_data)
        got, capture = read(write(tmp_path, f"cut{cut}", cut_data))
        assert got == complete[:-1], cut
        assert capture.stats.truncated_tail is (cut > len(data) - last_len), cut


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("notes.pcap", b"hello, this is text\n", "not a pcap or pcapng file (magic 0x68656c6c)"),
        ("empty.pcap", b"", "empty file"),
        ("short.pcap", pcap_file([])[:10], "truncated pcap header (10 of 24 bytes)"),
        ("text.pcap.gz", gzip.compress(b"just text"), "not a pcap or pcapng file"),
        ("empty.gz", gzip.compress(b""), "empty file"),
        ("bad.gz", b"\x1f\x8b" + b"\xff" * 30, "corrupt gzip data"),
        (
            "bom.pcapng",
            shb()[:8] + b"\xde\xad\xbe\xef" + shb()[12:],
            "not a pcapng file (byte-order magic 0xdeadbeef)",
        ),
    ],
)
def test_not_a_capture(tmp_path: Path, name: str, data: bytes, reason: str) -> None:
    path = write(tmp_path, name, data)
    with pytest.raises(CaptureError) as caught:
        open_capture(str(path))
    message = str(caught.value)
    assert message.startswith(f"{path}: {reason}")
    assert "\n" not in message
    assert caught.value.path == path


def test_missing_file_and_directory(tmp_path: Path) -> None:
    for path in (tmp_path / "absent.pcap", tmp_path):
        with pytest.raises(CaptureError, match=r"cannot read \(") as caught:
            open_capture(path)
        assert str(caught.value).startswith(f"{path}: ")


# --- object behaviour ----------------------------------------------------------------------


def test_packets_restarts_and_resets_stats(tmp_path: Path) -> None:
    with open_capture(write(tmp_path, "f.pcap", pcap_file(RECORDS))) as capture:
        first = list(capture.packets())
        assert list(capture.packets()) == first
        assert capture.stats.records == len(RECORDS)
        assert "pcap" in repr(capture)


def test_close_ends_iteration_and_keeps_stats(tmp_path: Path) -> None:
    capture = open_capture(write(tmp_path, "f.pcap", pcap_file(RECORDS)))
    packets = capture.packets()
    next(packets)
    next(packets)
    capture.close()
    assert list(packets) == []
    assert capture.stats.records == 2
    capture.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        capture.packets()


def test_iter_captures_chains_in_order_and_reports_each_file(tmp_path: Path) -> None:
    first = write(tmp_path, "a.pcap", pcap_file(RECORDS[:2]))
    second = write(tmp_path, "b.bin", gzip.compress(PCAPNG))
    opened: list[CaptureFile] = []
    got = list(iter_captures([first, second], opened))
    assert [fr for *_, fr in got][:2] == [RECORDS[0][2], RECORDS[1][2]]
    assert len(got) == 6
    assert [(c.path, c.format, c.compressed, c.stats.records) for c in opened] == [
        (first, "pcap", False, 2),
        (second, "pcapng", True, 4),
    ]


def test_iter_captures_raises_when_it_reaches_a_bad_file(tmp_path: Path) -> None:
    good = write(tmp_path, "a.pcap", pcap_file(RECORDS[:1]))
    bad = write(tmp_path, "b.txt", b"text")
    packets: Iterator[Record] = iter_captures([good, bad])
    assert next(packets)[3] == RECORDS[0][2]
    with pytest.raises(CaptureError, match=r"b\.txt: not a pcap"):
        next(packets)


# --- the real third-party corpus -------------------------------------------------------------

_ROW = re.compile(r"\| `([^`]+)` \|.*?\| (\w+) / ([\w-]+) / (\d+) pkts")
_FORMATS = {"pcap": "pcap", "nsecpcap": "pcap-ns", "pcapng": "pcapng"}


def manifest(corpus: Path) -> dict[str, tuple[str, int]]:
    """relative path -> (format, packets), from the tables of MANIFEST.md."""
    rows, section = {}, ""
    for line in (corpus / "MANIFEST.md").read_text(encoding="utf-8").splitlines():
        if heading := re.match(r"## ([\w-]+)/", line):
            section = heading.group(1)
        elif row := _ROW.match(line):
            rows[f"{section}/{row.group(1)}"] = (_FORMATS[row.group(2)], int(row.group(4)))
    return rows


@pytest.mark.corpus
def test_every_corpus_file_yields_the_manifest_count(pcap_corpus: Path) -> None:
    expected = manifest(pcap_corpus)
    assert len(expected) >= 30
    on_disk = {
        p.relative_to(pcap_corpus).as_posix()
        for p in pcap_corpus.rglob("*")
        if p.is_file() and p.name != "MANIFEST.md"
    }
    assert on_disk == set(expected)
    wrong = {}
    for rel, (fmt, count) in expected.items():
        got, capture = read(pcap_corpus / rel)
        if (capture.format, len(got), capture.stats.records) != (fmt, count, count):
            wrong[rel] = (capture.format, len(got), capture.stats)
    assert wrong == {}


def first_record(rel: str, index: int = 0) -> tuple[Record, CaptureFile]:
    got, capture = read(corpus_file("pcaps", rel))
    return got[index], capture


@pytest.mark.corpus
def test_nanosecond_pcap_keeps_microseconds() -> None:
    (ts, linktype, wirelen, frame), capture = first_record(
        "camera-iot/shf_dlink-dcs8000lh_lan.pcap"
    )
    assert capture.format == "pcap-ns"
    assert abs(ts - 1687339233.516011949) < 1e-6
    assert (linktype, wirelen, len(frame)) == (1, 20, 20)


@pytest.mark.corpus
def test_snaplen_cut_record_keeps_the_wire_length() -> None:
    record, _ = first_record("camera-iot/shf_xiaomi-cam_wan_snaplen150.pcap", 8)
    assert abs(record[0] - 1691506394.988453149) < 1e-6
    assert (record[2], len(record[3])) == (346, 150)


@pytest.mark.corpus
def test_pcapng_named_pcap_with_linux_sll() -> None:
    (ts, linktype, wirelen, _), capture = first_record("protocols/ndpi_rtsp.pcap")
    assert (capture.format, linktype, wirelen) == ("pcapng", 113, 205)
    assert abs(ts - 1627567277.506127) < 1e-6


@pytest.mark.corpus
def test_pcapng_second_interface_in_nanoseconds() -> None:
    (ts, _, wirelen, _), _ = first_record("protocols/ndpi_stun.pcap", 15)
    assert abs(ts - 1595356443.140497938) < 1e-6
    assert wirelen == 62


@pytest.mark.corpus
def test_sll2_and_raw_ipv6_link_types() -> None:
    got, _ = read(corpus_file("pcaps", "encapsulation", "sv_linktype-sll2.pcap"))
    assert {lt for _, lt, _, _ in got} == {276}
    (_, linktype, _, frame), _ = first_record("encapsulation/tcpdump_linktype-raw_ipv6.pcap")
    assert linktype == 101
    assert frame[0] >> 4 == 6


@pytest.mark.corpus
def test_truncated_corpus_file() -> None:
    got, capture = read(corpus_file("pcaps", "malformed", "dpkt_truncated_dns_2.pcap"))
    assert capture.stats.truncated_tail
    assert [(wl, len(fr)) for _, _, wl, fr in got] == [(282, 200)]


DPKT_FILES = [
    "camera-iot/sentinel_dlink-dcs935l_setup.pcap",  # pcap, little-endian
    "malformed/ndpi_fuzz-2006-06-26-2594.pcap",  # pcap, big-endian
    "camera-iot/shf_dlink-dcs8000lh_lan.pcap",  # nanosecond pcap, big-endian
    "protocols/ndpi_rtsp.pcap",  # pcapng, Linux SLL
    "protocols/zeek_communityid_ipv6.pcap",
]


@pytest.mark.corpus
@pytest.mark.parametrize("rel", DPKT_FILES)
def test_matches_dpkt(rel: str) -> None:
    path = corpus_file("pcaps", *rel.split("/"))
    got, _ = read(path)
    with path.open("rb") as handle:
        reference = list(dpkt.pcap.UniversalReader(handle))
    assert len(got) == len(reference)
    for (ts, _, wirelen, frame), (ref_ts, ref_frame) in zip(got, reference, strict=True):
        assert abs(ts - float(ref_ts)) < 1e-6
        assert frame == ref_frame
        assert wirelen == len(ref_frame)  # none of these files was cut at a snaplen


TSHARK_FILES = [
    "protocols/ndpi_stun.pcap",  # pcapng, two interfaces (µs and ns)
    "camera-iot/shf_xiaomi-cam_lan.pcap",  # pcapng, ns, snaplen 150
    "malformed/ndpi_badpackets.pcap",  # snaplen 59
]


@pytest.mark.corpus
@pytest.mark.tshark
@pytest.mark.parametrize("rel", TSHARK_FILES)
def test_matches_tshark(rel: str) -> None:
    tshark = shutil.which("tshark")
    if tshark is None:
        pytest.skip("tshark is not installed")
    path = corpus_file("pcaps", *rel.split("/"))
    fields = ["frame.time_epoch", "frame.len", "frame.cap_len"]
    command = [tshark, "-n", "-r", str(path), "-T", "fields", *(f"-e{f}" for f in fields)]
    lines = subprocess.run(command, capture_output=True, text=True, check=True).stdout.split()
    reference = [lines[i : i + 3] for i in range(0, len(lines), 3)]
    got, _ = read(path)
    assert len(got) == len(reference)
    for (ts, _, wirelen, frame), (ref_ts, ref_len, ref_caplen) in zip(got, reference, strict=True):
        assert abs(ts - float(ref_ts)) < 1e-6
        assert (wirelen, len(frame)) == (int(ref_len), int(ref_caplen))
