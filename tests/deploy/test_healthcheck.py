"""deploy/docker/healthcheck.py, the image's HEALTHCHECK, run as Docker runs it (a process with the
container's EXECGW_* environment) against the real gateway: healthy while it serves, unhealthy
when the service asked for is not served or nothing listens; over TLS as deploy/compose.yaml
configures it (the gateway's own self-signed certificate, checked for its name)."""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from execgw.server.app import SERVICE_NAME, endpoint_health_name
from execgw.server.config import Settings
from execgw.server.embedded import GatewayThread

from .deploy_files import DEPLOY, env_names_in, known_env_names

HEALTHCHECK = DEPLOY / "docker" / "healthcheck.py"

pytestmark = pytest.mark.timeout(90)


def healthcheck(environment: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EXECGW_")}
    return subprocess.run([sys.executable, str(HEALTHCHECK), *arguments], env={**clean, **environment},
                          capture_output=True, text=True, timeout=30)


def self_signed(folder: Path, name: str) -> tuple[Path, Path]:
    """A certificate as deploy/compose.yaml's openssl line makes it: self-signed, CN and SAN `name`."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name), x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "tls.crt", folder / "tls.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_file.chmod(0o600)
    return cert_file, key_file


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[GatewayThread]:
    """The embedded default (SQLite, the built-in simulator as paper), plaintext on loopback."""
    started = GatewayThread(Settings(database_url=f"sqlite:///{tmp_path / 'execgw.sqlite3'}",
                                     listen="127.0.0.1:0")).start()
    try:
        yield started
    finally:
        started.stop()


def test_healthy_while_the_gateway_serves_unhealthy_for_what_it_does_not(gateway: GatewayThread):
    env = {"EXECGW_LISTEN": f"0.0.0.0:{gateway.port}"}  # as in the image: reached on loopback
    for service in ("", SERVICE_NAME, endpoint_health_name("paper")):
        done = healthcheck(env, "--service", service)
        assert done.returncode == 0, (service, done.stderr)
    # No live endpoint configured: the health service does not know it.
    done = healthcheck(env, "--service", endpoint_health_name("live"))
    assert done.returncode == 1 and "NOT_FOUND" in done.stderr, done.stderr


def test_unhealthy_when_nothing_listens(gateway: GatewayThread):
    port = gateway.port
    gateway.stop()
    done = healthcheck({"EXECGW_LISTEN": f"0.0.0.0:{port}"}, "--timeout", "1")
    assert done.returncode == 1 and "UNAVAILABLE" in done.stderr, done.stderr


def test_over_tls_it_trusts_the_gateways_own_certificate_for_the_name_given(tmp_path: Path):
    cert_file, key_file = self_signed(tmp_path, "execgw")
    gateway = GatewayThread(Settings(database_url=f"sqlite:///{tmp_path / 'execgw.sqlite3'}", listen="127.0.0.1:0",
                                     tls_cert_file=cert_file, tls_key_file=key_file)).start()
    try:
        env = {"EXECGW_LISTEN": f"0.0.0.0:{gateway.port}", "EXECGW_TLS_CERT_FILE": str(cert_file),
               "EXECGW_TLS_KEY_FILE": str(key_file)}
        # deploy/compose.yaml's command: the name in the certificate.
        done = healthcheck(env, "--service", "", "--tls-name", "execgw")
        assert done.returncode == 0, done.stderr
        # Plaintext to a TLS port, or a name the certificate does not carry: unhealthy.
        done = healthcheck({"EXECGW_LISTEN": env["EXECGW_LISTEN"]}, "--timeout", "2")
        assert done.returncode == 1, done.stderr
        done = healthcheck(env, "--tls-name", "elsewhere.example", "--timeout", "2")
        assert done.returncode == 1 and "UNAVAILABLE" in done.stderr, done.stderr
    finally:
        gateway.stop()


def test_it_reads_only_names_execgw_reads():
    assert env_names_in(HEALTHCHECK.read_text(encoding="utf-8")) <= known_env_names()
