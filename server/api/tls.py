"""TLS on the gRPC port: the server's certificate and key, and optionally the CA that signs
client certificates (then every client must present one: mutual TLS).

The files are read and checked (the certificate matches the key, the CA file holds a CA) before
gRPC sees them, so a wrong file stops start-up with its name instead of failing every handshake.
On SIGHUP `reload()` reads them again; gRPC asks `_next_configuration` before each new
handshake, so new connections get the new certificate and open ones keep theirs. A reload that
fails the checks keeps the certificate in use and says why.

The key's contents are never logged: messages name files, never what is in them.
"""

from __future__ import annotations

import logging
import os
import ssl
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

import grpc

from execgw.server.config import Settings

log = logging.getLogger(__name__)


class TlsConfigError(ValueError):
    """The TLS settings or files are unusable; the message names the file and why."""


@dataclass(frozen=True)
class TlsFiles:
    certificate: Path
    key: Path
    client_ca: Path | None = None

    @property
    def mutual(self) -> bool:
        """Clients must present a certificate signed by `client_ca`."""
        return self.client_ca is not None


@dataclass(frozen=True)
class _Loaded:
    certificate: bytes
    key: bytes
    client_ca: bytes | None


def tls_files_of(settings: Settings) -> TlsFiles | None:
    """The TLS files the settings name, or None for plaintext. A certificate without its key (or
    the reverse), or a client CA without a server certificate, is a configuration error."""
    certificate, key, client_ca = settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file
    if certificate is None and key is None:
        if client_ca is not None:
            raise TlsConfigError("tls_client_ca_file needs tls_cert_file and tls_key_file: "
                                 "client certificates are only checked over TLS")
        return None
    if certificate is None or key is None:
        raise TlsConfigError("tls_cert_file and tls_key_file go together: give both or neither")
    return TlsFiles(certificate, key, client_ca)


def transport_of(files: TlsFiles | None) -> str:
    """How the port is protected, for the start-up log."""
    if files is None:
        return "plaintext"
    return "mutual TLS: client certificates required" if files.mutual else "TLS"


class ServerCertificates:
    """The certificate the gRPC port presents now, and the next one after a reload."""

    def __init__(self, files: TlsFiles) -> None:
        self.files = files
        self._lock = threading.Lock()
        _warn_if_key_readable_by_others(files.key)
        self._initial = _configuration(_load(files))
        self._pending: grpc.ServerCertificateConfiguration | None = None

    def credentials(self) -> grpc.ServerCredentials:
        """For `server.add_secure_port`; with a client CA, connections without a client
        certificate signed by it are refused during the handshake."""
        return grpc.dynamic_ssl_server_credentials(
            self._initial, self._next_configuration, require_client_authentication=self.files.mutual
        )

    def reload(self) -> bool:
        """Reads the files again; the next handshakes use them. False (and the current
        certificate kept) when they fail the checks."""
        try:
            _warn_if_key_readable_by_others(self.files.key)
            configuration = _configuration(_load(self.files))
        except TlsConfigError as error:
            log.error("TLS certificate not reloaded, the current one stays in use: %s", error)
            return False
        with self._lock:
            self._pending = configuration
        log.info("TLS certificate reloaded from %s; new connections use it", self.files.certificate)
        return True

    def _next_configuration(self) -> grpc.ServerCertificateConfiguration | None:
        # Called by gRPC core before every handshake, on its own threads: only swap under the
        # lock, never block. None keeps the configuration gRPC already has.
        with self._lock:
            configuration, self._pending = self._pending, None
        return configuration


def _configuration(loaded: _Loaded) -> grpc.ServerCertificateConfiguration:
    return grpc.ssl_server_certificate_configuration([(loaded.key, loaded.certificate)], loaded.client_ca)


def _load(files: TlsFiles) -> _Loaded:
    before = _read(files)
    _check(files)
    # The check reads the files by name; if one was replaced meanwhile (a renewal half done),
    # what was checked is not what was read: refuse rather than serve an unchecked pair.
    if _read(files) != before:
        raise TlsConfigError(f"{files.certificate} or {files.key} changed while being loaded; load them again")
    return before


def _read(files: TlsFiles) -> _Loaded:
    return _Loaded(
        _read_file(files.certificate, "certificate"),
        _read_file(files.key, "key"),
        _read_file(files.client_ca, "client CA") if files.client_ca is not None else None,
    )


def _read_file(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise TlsConfigError(f"TLS {what} file {path}: {error.strerror or error}") from None


def _check(files: TlsFiles) -> None:
    """OpenSSL (through the standard library) parses the files as gRPC will use them."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        # A key behind a passphrase would make OpenSSL prompt on the terminal; gRPC cannot use one.
        context.load_cert_chain(files.certificate, files.key, password=_no_passphrase)
    except _EncryptedKey:
        raise TlsConfigError(f"TLS key file {files.key} is encrypted; gRPC needs it unencrypted "
                             "(keep it readable by the service only)") from None
    except (ssl.SSLError, OSError) as error:
        raise TlsConfigError(f"TLS certificate {files.certificate} and key {files.key} do not load as a "
                             f"matching pair: {_reason(error)}") from None
    if files.client_ca is not None:
        try:
            context.load_verify_locations(cafile=files.client_ca)
        except (ssl.SSLError, OSError) as error:
            raise TlsConfigError(f"TLS client CA file {files.client_ca} holds no usable certificate: "
                                 f"{_reason(error)}") from None
        # OpenSSL also loads CRLs from a CA file, and one holding only a CRL passes the load; gRPC
        # refuses it: at start-up as a bare "Failed to bind to address", and on a reload silently
        # keeping the old CA while the log said the new one was in use.
        if context.cert_store_stats()["x509"] == 0:
            raise TlsConfigError(f"TLS client CA file {files.client_ca} holds no certificate (a CRL alone "
                                 "verifies no client)")


class _EncryptedKey(Exception):
    pass


def _no_passphrase() -> bytes:
    raise _EncryptedKey


def _reason(error: OSError) -> str:
    # ssl.SSLError carries OpenSSL's reason code (e.g. KEY_VALUES_MISMATCH), never file contents.
    return getattr(error, "reason", None) or error.strerror or type(error).__name__


def _warn_if_key_readable_by_others(key: Path) -> None:
    try:
        mode = key.stat().st_mode
    except OSError:
        return  # reading it reports the problem
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("TLS key file %s is readable by other users (mode %o); make it readable by the "
                    "service only (chmod 600)", key, stat.S_IMODE(mode))
