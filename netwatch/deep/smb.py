"""SMB on TCP 445: Zeek's ``smb`` service (NVRs and cameras write recordings to NAS shares).

Zeek's SMB analyzer (read for behaviour) is attached to TCP 139 and 445; on 445 every SMB
message is preceded by a 4-byte direct-TCP header (a zero byte and a 24-bit length, MS-SMB2
section 2.1) and starts with ``\\xffSMB`` (SMB1), ``\\xfeSMB`` (SMB2/3) or ``\\xfdSMB`` (an
encrypted SMB3 transform). :func:`is_smb` checks both; :class:`SmbParser` names the flow
``smb`` from the client's first message. Zeek also names the authentication it sees inside
(``gssapi``, ``ntlm``, ``krb``): not needed here. Reads no configuration; never raises.
Known limit: port 139 (NetBIOS session service first) is not followed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from netwatch.deep.base import Context, DeepParser, Verdict, service, tcp_partial

if TYPE_CHECKING:
    from netwatch.flow.table import Flow

SMB_PORT: Final = 445
SMB_MAGIC: Final = (b"\xffSMB", b"\xfeSMB", b"\xfdSMB")


def is_smb(data: bytes) -> bool:
    """A direct-TCP framed SMB message."""
    return len(data) >= 8 and data[0] == 0 and data[4:8] in SMB_MAGIC


class SmbParser(DeepParser):
    """SMB on TCP 445: ``smb`` from the client's first message."""

    rank = 50
    tcp_ports = frozenset({SMB_PORT})

    def tcp(self, ctx: Context, flow: Flow, is_orig: bool, buf: bytes, ts: float) -> Verdict:
        if not is_smb(buf):
            return Verdict.PASS if is_orig else Verdict.DONE
        ctx.count("smb")
        if not tcp_partial(flow):  # Zeek's SMB analyzer ignores partial connections
            service(flow, "smb")
        return Verdict.DONE
