"""The client CA file of mutual TLS must hold a certificate. One holding only a CRL passed the
start-up check (OpenSSL loads CRLs from a CA file too): at start gRPC then failed with a bare
"Failed to bind to address", and on SIGHUP the gateway logged "TLS certificate reloaded; new
connections use it" while gRPC went on with the old CA. End to end, on SQLite and MariaDB."""

from __future__ import annotations

import datetime
import logging
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from test_tls import Authority, Pki, client_tls, write_atomically

from execgw.client import ExecGwClient
from execgw.server.embedded import GatewayStartError

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    """As test_tls.py's: a CA, the gateway's certificate, a client it signed, a stranger's."""
    folder = tmp_path / "pki"
    folder.mkdir()
    ca = Authority(folder, "execgw-test-ca")
    return Pki(ca, ca.issue("gateway", server=True), ca.issue("alice", server=False),
               Authority(folder, "other-ca").issue("mallory", server=False))


def _crl_only(pki: Pki) -> bytes:
    now = datetime.datetime.now(datetime.UTC)
    crl = (x509.CertificateRevocationListBuilder().issuer_name(pki.ca.name)
           .last_update(now).next_update(now + datetime.timedelta(days=1)).sign(pki.ca.key, hashes.SHA256()))
    return crl.public_bytes(serialization.Encoding.PEM)


def test_a_client_ca_file_holding_no_certificate_stops_start_up_naming_it(
    start_gateway, pki: Pki, tmp_path: Path,
) -> None:
    client_ca = tmp_path / "client-ca.pem"
    client_ca.write_bytes(_crl_only(pki))
    with pytest.raises(GatewayStartError, match=f"client CA file {client_ca} holds no certificate"):
        start_gateway(tls_cert_file=pki.server.cert, tls_key_file=pki.server.key, tls_client_ca_file=client_ca)


def test_a_client_ca_renewed_to_a_file_holding_no_certificate_is_not_reloaded_and_says_so(
    start_gateway, pki: Pki, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="execgw")
    client_ca = tmp_path / "client-ca.pem"
    client_ca.write_bytes(pki.ca.cert_file.read_bytes())
    gw = start_gateway(tls_cert_file=pki.server.cert, tls_key_file=pki.server.key, tls_client_ca_file=client_ca)

    write_atomically(client_ca, _crl_only(pki))
    gw.gateway.gateway.reload_files()  # what SIGHUP does
    assert "TLS certificate not reloaded" in caplog.text and str(client_ca) in caplog.text
    assert "TLS certificate reloaded" not in caplog.text
    with ExecGwClient(gw.gateway.target, tls=client_tls(pki, pki.alice), timeout=10) as alice:
        assert list(alice.list()) == []  # a new connection, by the CA still in use
