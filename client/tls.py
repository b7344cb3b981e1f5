"""TLS to the gateway: the CA to trust for its certificate and, when the gateway requires client
certificates (mutual TLS), this client's certificate and key.

    tls = ClientTls(ca_file=Path("ca.pem"), cert_file=Path("me.pem"), key_file=Path("me.key"))
    with ExecGwClient("gw.example:50051", tls=tls) as gw: ...

`ClientTls.from_environment()` reads EXECGW_TLS_CA, EXECGW_TLS_CLIENT_CERT, EXECGW_TLS_CLIENT_KEY.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc

CA_ENV = "EXECGW_TLS_CA"
CERT_ENV = "EXECGW_TLS_CLIENT_CERT"
KEY_ENV = "EXECGW_TLS_CLIENT_KEY"


class TlsFileError(ValueError):
    """A TLS file could not be read, or a certificate came without its key; names the file only."""


@dataclass(frozen=True)
class ClientTls:
    """``ca_file`` None trusts the system's CAs (a gateway with a public certificate)."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    def __post_init__(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            raise TlsFileError("a client certificate and its key go together: give both or neither")

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> ClientTls | None:
        """TLS as the environment asks for it, or None (plaintext) when it names no file."""
        values = [environ.get(name) or None for name in (CA_ENV, CERT_ENV, KEY_ENV)]
        if not any(values):
            return None
        ca_file, cert_file, key_file = (Path(value) if value else None for value in values)
        return cls(ca_file, cert_file, key_file)

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """The files are read now, once: a renewed client certificate takes a new client."""
        return grpc.ssl_channel_credentials(
            root_certificates=_read(self.ca_file, "CA"),
            private_key=_read(self.key_file, "client key"),
            certificate_chain=_read(self.cert_file, "client certificate"),
        )


def _read(path: Path | None, what: str) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as error:
        raise TlsFileError(f"TLS {what} file {path}: {error.strerror or error}") from None
