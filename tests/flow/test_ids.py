"""Tests for uids and Community ID v1 (checked against the reference implementation)."""

from __future__ import annotations

import base64
import hashlib
import random
import socket
import struct

import communityid
import pytest

from netwatch.flow.ids import UID_BATCH, UidSource, community_id


def _reference(proto: int, s: bytes, d: bytes, sp: int, dp: int, seed: int = 0) -> str:
    fam = socket.AF_INET6 if len(s) == 16 else socket.AF_INET
    a, b = socket.inet_ntop(fam, s), socket.inet_ntop(fam, d)
    if proto == 1:
        tpl = communityid.FlowTuple.make_icmp(a, b, sp, dp)
    elif proto == 58:
        tpl = communityid.FlowTuple.make_icmp6(a, b, sp, dp)
    else:
        tpl = communityid.FlowTuple(proto, a, b, sp, dp)
    return str(communityid.CommunityID(seed).calc(tpl))


def test_spec_example_tcp() -> None:
    # The community-id-spec README example: 128.232.110.120:34855 -> 66.35.250.204:80 tcp.
    s = socket.inet_aton("128.232.110.120")
    d = socket.inet_aton("66.35.250.204")
    assert community_id(s, d, 6, 34855, 80) == "1:LQU9qZlK+B5F3KDmev6m5PMibrg="
    assert community_id(d, s, 6, 80, 34855) == "1:LQU9qZlK+B5F3KDmev6m5PMibrg="


@pytest.mark.parametrize("seed", range(5))
def test_matches_reference_implementation(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(400):
        n = 16 if rng.random() < 0.3 else 4
        s = rng.randbytes(n)
        d = s if rng.random() < 0.1 else rng.randbytes(n)
        proto = rng.choice([6, 17, 132, 58 if n == 16 else 1])
        if proto in (1, 58):
            sp, dp = rng.choice([0, 3, 8, 11, 13, 128, 129, 135]), rng.randrange(5)
        else:
            sp, dp = rng.randrange(65536), rng.randrange(65536)
        assert community_id(s, d, proto, sp, dp) == _reference(proto, s, d, sp, dp)


@pytest.mark.parametrize("hash_seed", [1, 0x1234, 65535])
def test_matches_reference_implementation_with_a_seed(hash_seed: int) -> None:
    rng = random.Random(hash_seed)
    for _ in range(200):
        s, d = rng.randbytes(4), rng.randbytes(4)
        proto = rng.choice([6, 17, 1])
        sp, dp = (rng.choice([3, 8, 0]), 0) if proto == 1 else (rng.randrange(65536), 80)
        assert community_id(s, d, proto, sp, dp, hash_seed) == _reference(
            proto, s, d, sp, dp, hash_seed
        )


def test_echo_request_and_reply_share_an_id() -> None:
    a, b = socket.inet_aton("10.0.0.1"), socket.inet_aton("10.0.0.2")
    assert community_id(a, b, 1, 8, 0) == community_id(b, a, 1, 0, 0)


def test_uids_are_zeek_shaped_unique_and_seedable() -> None:
    src = UidSource(7)
    uids = [src.next() for _ in range(10_000)]
    assert len(set(uids)) == len(uids)
    assert all(u.startswith("C") and len(u) == 18 and u.isalnum() for u in uids)
    assert UidSource(7).next() == uids[0]
    assert UidSource(8).next() != uids[0]


def test_uids_are_the_seeded_generators_randbytes() -> None:
    """The uid's 17 random bytes are exactly ``Random(seed).randbytes(17)``, uid after uid (a
    seeded replay's uids do not change with how the bytes are drawn)."""
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    # uids are made UID_BATCH at a time: three batches and a bit, every byte value seen
    for seed in (3, 0, 2**70):
        src, rng = UidSource(seed), random.Random(seed)
        seen: set[int] = set()
        for _ in range(3 * UID_BATCH + 5):
            raw = rng.randbytes(17)
            seen.update(raw)
            assert src.next() == "C" + "".join(alphabet[b % 62] for b in raw)
        assert len(seen) == 256


def test_addresses_of_other_lengths_hash_the_same_bytes() -> None:
    # two 4- or 16-byte addresses take one struct call; any other pair the concatenation:
    # both hash seed, addresses, protocol, a zero pad byte and ports, in that order
    def by_hand(s: bytes, d: bytes, proto: int, sp: int, dp: int, seed: int) -> str:
        if (s, sp) > (d, dp):
            s, d, sp, dp = d, s, dp, sp
        data = struct.pack("!H", seed) + s + d + struct.pack("!BBHH", proto, 0, sp, dp)
        return "1:" + base64.b64encode(hashlib.sha1(data).digest()).decode()

    v4, v6 = bytes([10, 0, 0, 1]), bytes(range(16))
    assert community_id(v4, v4[::-1], 6, 1, 2, 7) == by_hand(v4, v4[::-1], 6, 1, 2, 7)
    assert community_id(v6, v6[::-1], 17, 9, 8) == by_hand(v6, v6[::-1], 17, 9, 8, 0)
    assert community_id(v6, v4, 17, 5, 6) == by_hand(v6, v4, 17, 5, 6, 0)
    assert community_id(v4, v4, 6, 9, 8) == by_hand(v4, v4, 6, 9, 8, 0)
    assert community_id(b"\x01\x02", v4, 6, 5, 6, 3) == by_hand(b"\x01\x02", v4, 6, 5, 6, 3)
