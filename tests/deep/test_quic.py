"""Tests for netwatch.deep.quic: RFC 9001 Appendix A, Zeek's QUIC traces, hostile bytes."""

from __future__ import annotations

import hmac

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from netwatch.deep import quic
from netwatch.deep.base import Verdict
from netwatch.deep.quic import (
    MAX_CRYPTO_BYTES,
    QUIC_STATE,
    VERSION_1,
    VERSION_2,
    InitialKeys,
    QuicParser,
    client_initial_keys,
    crypto_frames,
    decrypt_initial,
    looks_like_initial,
    parse_long_header,
    reassembled,
)
from netwatch.testing.zeekconn import replay_trace
from tests.conftest import corpus_file
from tests.deep.lanctx import Recorder, udp_flow
from tests.deep.test_dns import l4_payloads, mutate
from tests.profile import examples

# RFC 9001 Appendix A: the example client Initial (DCID, keys, header, CRYPTO frame).
RFC_DCID = bytes.fromhex("8394c8f03e515708")
RFC_KEYS = InitialKeys(
    key=bytes.fromhex("1f369613dd76d5467730efcbe3b1a22d"),
    iv=bytes.fromhex("fa044b2f42a3fd3b46fb255c"),
    hp=bytes.fromhex("9f50449e04a0e810283a1e9933adedd2"),
)
RFC_HEADER = bytes.fromhex("c300000001088394c8f03e5157080000449e00000002")
RFC_PROTECTED_HEADER = bytes.fromhex("c000000001088394c8f03e5157080000449e7b9aec34")
RFC_SAMPLE = bytes.fromhex("d1b1c98dd7689fb8ec11d242b123dc9b")
RFC_CRYPTO_FRAME = bytes.fromhex(
    "060040f1010000ed0303ebf8fa56f12939b9584a3896472ec40bb863cfd3e868"
    "04fe3a47f06a2b69484c00000413011302010000c000000010000e00000b6578"
    "616d706c652e636f6dff01000100000a00080006001d00170018001000070005"
    "04616c706e000500050100000000003300260024001d00209370b2c9caa47fba"
    "baf4559fedba753de171fa71f50f1ce15d43e994ec74d748002b000302030400"
    "0d0010000e0403050306030203080408050806002d00020101001c0002400100"
    "3900320408ffffffffffffffff05048000ffff07048000ffff08011001048000"
    "75300901100f088394c8f03e51570806048000ffff"
)
RFC_PAYLOAD_LEN = 1162  # the CRYPTO frame padded with PADDING frames
PN_OFFSET = 18
PN_LEN = 4


def protect(header: bytes, payload: bytes, keys: InitialKeys, pn_offset: int) -> bytes:
    """Packet protection as RFC 9001 sections 5.3 and 5.4 describe it (the sender's side)."""
    pn_len = (header[0] & 0x03) + 1
    packet_number = header[pn_offset : pn_offset + pn_len]
    nonce = bytearray(keys.iv)
    for i, byte in enumerate(reversed(packet_number)):
        nonce[-1 - i] ^= byte
    sealed = AESGCM(keys.key).encrypt(bytes(nonce), payload, header)
    sample = sealed[4 - pn_len : 4 - pn_len + 16]
    encryptor = Cipher(algorithms.AES(keys.hp), modes.ECB()).encryptor()
    mask = encryptor.update(sample) + encryptor.finalize()
    out = bytearray(header + sealed)
    out[0] ^= mask[0] & 0x0F
    for i in range(pn_len):
        out[pn_offset + i] ^= mask[1 + i]
    return bytes(out)


def rfc_packet() -> bytes:
    payload = RFC_CRYPTO_FRAME + bytes(RFC_PAYLOAD_LEN - len(RFC_CRYPTO_FRAME))
    return protect(RFC_HEADER, payload, RFC_KEYS, PN_OFFSET)


def test_rfc9001_initial_keys() -> None:
    assert client_initial_keys(RFC_DCID, VERSION_1) == RFC_KEYS


@settings(max_examples=examples(500), deadline=None)
@given(st.binary(max_size=140), st.binary(max_size=200))
def test_hmac_over_pad_states_is_hmac_sha256(key: bytes, message: bytes) -> None:
    """The key schedule's HMAC (pad states made once per key, copied per message) is the
    stdlib's HMAC-SHA256, for keys shorter and longer than a SHA-256 block."""
    states = quic._hmac_key(key)
    want = hmac.digest(key, message, "sha256")
    assert quic._hmac(states, message) == want
    assert quic._hmac(states, message) == want  # the states are copied, not used up
    assert quic._hmac(states, b"") == hmac.digest(key, b"", "sha256")


@pytest.mark.parametrize("size", [0, 1, 63, 64, 65, 128, 129])
def test_hmac_key_at_the_block_size(size: int) -> None:
    key = bytes(range(size))
    assert quic._hmac(quic._hmac_key(key), b"abc") == hmac.digest(key, b"abc", "sha256")


def test_rfc9001_protected_packet_matches_the_rfc() -> None:
    packet = rfc_packet()
    assert packet[: len(RFC_PROTECTED_HEADER)] == RFC_PROTECTED_HEADER
    assert packet[len(RFC_PROTECTED_HEADER) : len(RFC_PROTECTED_HEADER) + 16] == RFC_SAMPLE
    assert len(packet) == 1200


def test_rfc9001_initial_decrypts_to_its_crypto_frame() -> None:
    packet = rfc_packet()
    header = parse_long_header(packet)
    assert header is not None
    assert (header.dcid, header.pn_offset, header.end) == (RFC_DCID, PN_OFFSET, 1200)
    payload = decrypt_initial(packet, header, RFC_KEYS)
    assert payload is not None and payload.startswith(RFC_CRYPTO_FRAME)
    frames = crypto_frames(payload)
    assert [(offset, len(data)) for offset, data in frames] == [(0, 241)]


def test_parser_puts_sni_and_alpn_on_the_flow() -> None:
    ctx = Recorder()
    flow = udp_flow(b"\x0a\x00\x00\x01", 50000, b"\x0a\x00\x00\x02", 443)
    assert QuicParser().udp(ctx, flow, True, rfc_packet(), 0.0) is Verdict.DONE
    assert flow.app is not None
    assert flow.app["service"] == ["quic", "ssl"]
    assert flow.app["sni"] == "example.com"
    assert flow.app["alpn"] == ("alpn",)
    assert QUIC_STATE not in flow.app


def test_a_wrong_key_or_a_flipped_bit_does_not_confirm_quic() -> None:
    packet = bytearray(rfc_packet())
    packet[600] ^= 1
    ctx = Recorder()
    flow = udp_flow(b"\x0a\x00\x00\x01", 50000, b"\x0a\x00\x00\x02", 443)
    parser = QuicParser()
    assert parser.udp(ctx, flow, True, bytes(packet), 0.0) is Verdict.MORE
    assert "service" not in (flow.app or {})
    assert ctx.counts == {"quic_undecrypted": 1}
    assert parser.udp(ctx, flow, True, bytes(packet), 0.0) is Verdict.DONE  # gives up
    assert QUIC_STATE not in (flow.app or {})


def test_server_direction_and_non_quic_ports_are_left_alone() -> None:
    parser, ctx = QuicParser(), Recorder()
    flow = udp_flow(b"\x0a\x00\x00\x01", 50000, b"\x0a\x00\x00\x02", 443)
    assert parser.udp(ctx, flow, False, rfc_packet(), 0.0) is Verdict.DONE
    other = udp_flow(b"\x0a\x00\x00\x01", 50000, b"\x0a\x00\x00\x02", 9999)
    assert parser.udp(ctx, other, True, b"\x80" + bytes(40), 0.0) is Verdict.DONE
    assert other.app is None


def test_dpd_on_another_port_needs_an_initial_of_a_known_version() -> None:
    packet = rfc_packet()
    assert looks_like_initial(packet)
    assert not looks_like_initial(b"\xc0\x00\x00\x00\x02" + packet[5:])  # unknown version
    assert not looks_like_initial(b"\xe0" + packet[1:])  # a v1 Handshake packet
    assert looks_like_initial(b"\xd0" + VERSION_2.to_bytes(4, "big"))  # a v2 Initial
    flow = udp_flow(b"\x0a\x00\x00\x01", 50000, b"\x0a\x00\x00\x02", 4433)
    assert QuicParser().udp(Recorder(), flow, True, packet, 0.0) is Verdict.DONE
    assert flow.app is not None and flow.app["sni"] == "example.com"


def test_hello_split_over_two_initials_out_of_order() -> None:
    hello = RFC_CRYPTO_FRAME[4:]  # the frame's type, offset and length bytes dropped
    first = b"\x06\x00\x40\x64" + hello[:100]
    second = b"\x06\x40\x64\x40\x8d" + hello[100:]
    packets = [
        protect(RFC_HEADER[:-1] + bytes((n,)), frame + bytes(1162 - len(frame)), RFC_KEYS, 18)
        for n, frame in ((3, second), (4, first))
    ]
    ctx = Recorder()
    flow = udp_flow(b"\x0a\x00\x00\x01", 50000, b"\x0a\x00\x00\x02", 443)
    parser = QuicParser()
    assert parser.udp(ctx, flow, True, packets[0], 0.0) is Verdict.MORE
    assert flow.app is not None and flow.app["service"] == ["quic"]
    assert parser.udp(ctx, flow, True, packets[1], 0.0) is Verdict.DONE
    assert flow.app["sni"] == "example.com"


def test_reassembly_keeps_only_the_contiguous_prefix() -> None:
    assert reassembled({0: b"abc", 3: b"def", 10: b"x"}) == b"abcdef"
    assert reassembled({0: b"abcd", 2: b"cdEF"}) == b"abcdEF"
    assert reassembled({5: b"late"}) == b""


def test_crypto_bytes_are_bounded() -> None:
    frame = b"\x06" + b"\x80\x00\x40\x00" + b"\x40\x10" + bytes(16)  # offset 16384
    assert crypto_frames(frame) == [(MAX_CRYPTO_BYTES, bytes(16))]
    flow = udp_flow(b"\x0a\x00\x00\x01", 50000, b"\x0a\x00\x00\x02", 443)
    packet = protect(RFC_HEADER, frame + bytes(1162 - len(frame)), RFC_KEYS, 18)
    assert QuicParser().udp(Recorder(), flow, True, packet, 0.0) is Verdict.MORE
    assert flow.app is not None and flow.app[QUIC_STATE].crypto == {}


ZEEK_QUIC = {
    "chromium-115.0.5790.110-google-de-fragmented.pcap": "www.google.de",
    "firefox-102.13.0esr-blog-cloudflare-com.pcap": "blog.cloudflare.com",
    "quic-multiple-initial-fragmented-crypto-only-initial.pcap": "googleads.g.doubleclick.net",
    "quic_win11_firefox_google.pcap": "www.google.com",
    "quicv2-echo-443.pcap": "localhost",
    "quicv2-echo-dpd-custom-port-4433.pcap": "localhost",
}


@pytest.mark.corpus
@pytest.mark.parametrize(("trace", "sni"), sorted(ZEEK_QUIC.items()))
def test_zeek_quic_traces(trace: str, sni: str) -> None:
    """Zeek logs ``quic,ssl`` for each; the SNI is the one its quic.log names."""
    path = corpus_file("zeek", "traces", "quic", trace)
    parser, ctx = QuicParser(), Recorder()
    flow = None
    for seg in l4_payloads(path):
        if flow is None:
            flow = udp_flow(b"c", seg.sport, b"s", seg.dport)
            client = (seg.src, seg.sport)
        is_orig = (seg.src, seg.sport) == client
        if parser.udp(ctx, flow, is_orig, seg.payload, 0.0) is Verdict.DONE and is_orig:
            break
    assert flow is not None and flow.app is not None
    assert flow.app["service"] == ["quic", "ssl"]
    assert flow.app["sni"] == sni


@pytest.mark.corpus
def test_zeek_truncated_initial_is_not_quic() -> None:
    """Zeek's vector-max-size-crash trace: one cut datagram, no service in its conn.log."""
    path = corpus_file("zeek", "traces", "quic", "vector-max-size-crash.pcap")
    flow = udp_flow(b"c", 1, b"s", 443)
    for seg in l4_payloads(path):
        QuicParser().udp(Recorder(), flow, True, seg.payload, 0.0)
    assert "service" not in (flow.app or {})


@settings(max_examples=examples(300), deadline=None)
@given(st.binary(max_size=64))
def test_mutated_initials_never_raise(noise: bytes) -> None:
    flow = udp_flow(b"\x0a\x00\x00\x01", 50000, b"\x0a\x00\x00\x02", 443)
    QuicParser().udp(Recorder(), flow, True, mutate(rfc_packet(), noise), 0.0)


@settings(max_examples=examples(1000), deadline=None)
@given(st.binary(max_size=200))
def test_random_datagrams_never_raise(data: bytes) -> None:
    flow = udp_flow(b"\x0a\x00\x00\x01", 50000, b"\x0a\x00\x00\x02", 443)
    QuicParser().udp(Recorder(), flow, True, b"\xc0\x00\x00\x00\x01" + data, 0.0)
    assert crypto_frames(data) is not None


@pytest.mark.corpus
def test_quic_sni_reaches_the_flow_record() -> None:
    """Through the whole pipeline: names and rules read the QUIC SNI as they read TLS's."""
    path = corpus_file("zeek", "traces", "quic", "quic_win11_firefox_google.pcap")
    (record,) = replay_trace(path)
    assert (record["service"], record["server_name"], record["resp_name"]) == (
        "quic,ssl",
        "www.google.com",
        "www.google.com",
    )
