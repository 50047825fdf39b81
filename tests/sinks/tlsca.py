"""A private certificate authority made at test time with the ``openssl`` command line tool:
a CA, server certificates for given names and addresses, and client certificates.

Keys are EC P-256, valid for two days, written with mode 0600 (netwatch refuses a key file
others may read). Tests that need it skip with a reason when ``openssl`` is not installed.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

OPENSSL = shutil.which("openssl")
DAYS = "2"


@dataclass(frozen=True)
class Pair:
    """A certificate and its private key."""

    cert: Path
    key: Path


def need_openssl() -> str:
    """The openssl binary, or skip the test."""
    if OPENSSL is None:
        pytest.skip("needs the openssl command line tool (Debian: apt-get install openssl)")
    return OPENSSL


def _run(*args: str, cwd: Path) -> None:
    subprocess.run([need_openssl(), *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _key(path: Path) -> None:
    _run(
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        path.name,
        cwd=path.parent,
    )
    path.chmod(0o600)


class CA:
    """A CA in ``folder`` that issues certificates."""

    def __init__(self, folder: Path, name: str = "netwatch test CA") -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.pair = Pair(folder / "ca.crt", folder / "ca.key")
        _key(self.pair.key)
        _run(
            "req",
            "-x509",
            "-new",
            "-key",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            DAYS,
            "-subj",
            f"/CN={name}",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-addext",
            "subjectKeyIdentifier=hash",
            cwd=folder,
        )

    @property
    def cert(self) -> Path:
        return self.pair.cert

    def issue(
        self,
        stem: str,
        *,
        dns: tuple[str, ...] = (),
        ips: tuple[str, ...] = (),
        client: bool = False,
    ) -> Pair:
        """A certificate for ``dns`` names and ``ips`` (a server's) or a client's."""
        pair = Pair(self.folder / f"{stem}.crt", self.folder / f"{stem}.key")
        _key(pair.key)
        _run(
            "req",
            "-new",
            "-key",
            pair.key.name,
            "-out",
            f"{stem}.csr",
            "-subj",
            f"/CN={stem}",
            cwd=self.folder,
        )
        alt = [f"DNS:{d}" for d in dns] + [f"IP:{i}" for i in ips]
        ext = [
            "basicConstraints=critical,CA:FALSE",
            "keyUsage=critical,digitalSignature",
            f"extendedKeyUsage={'clientAuth' if client else 'serverAuth'}",
            "subjectKeyIdentifier=hash",
            "authorityKeyIdentifier=keyid",
        ]
        if alt:
            ext.append(f"subjectAltName={','.join(alt)}")
        (self.folder / f"{stem}.ext").write_text("\n".join(ext) + "\n", encoding="utf-8")
        _run(
            "x509",
            "-req",
            "-in",
            f"{stem}.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            pair.cert.name,
            "-days",
            DAYS,
            "-extfile",
            f"{stem}.ext",
            cwd=self.folder,
        )
        return pair
