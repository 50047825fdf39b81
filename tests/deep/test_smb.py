"""Tests for netwatch.deep.smb: direct-TCP framed SMB1/2/3 names ``smb``."""

from __future__ import annotations

from netwatch.deep.smb import is_smb
from netwatch.testing import pcapgen as g
from tests.flow.test_inspect import NVR, run

NEGOTIATE = b"\x00\x00\x00\x44\xfeSMB" + bytes(64)


def test_framing() -> None:
    assert is_smb(NEGOTIATE)
    assert is_smb(b"\x00\x00\x00\x20\xffSMB" + bytes(28))
    assert not is_smb(b"\x81\x00\x00\x44" + bytes(68))  # a NetBIOS session request
    assert not is_smb(NEGOTIATE[:7])


def test_flow_on_445() -> None:
    s = g.TcpSession(NVR, 40500, 445)
    (flow,), _ = run([*s.handshake(), *s.send(True, NEGOTIATE)])
    assert flow.app is not None and flow.app["service"] == ["smb"]
    other = g.TcpSession(NVR, 40501, 445)
    (flow,), _ = run([*other.handshake(), *other.send(True, b"\x01\x02junk")])
    assert "service" not in (flow.app or {})
