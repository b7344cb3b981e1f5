"""deploy/compose.yaml and deploy/kubernetes/, without Docker or a cluster (neither runs here):
they parse, every EXECGW_* name in them is one the gateway reads, their environment loads through
the gateway's settings and passes its bind guard, their ports are the port it listens on, their
health checks ask names the gateway really serves (asked of a running gateway), secrets are
mounted read-only where the settings point, and the commands they run are ones the CLI accepts."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy.engine import make_url

from execgw.server.api.bind_guard import check_bind
from execgw.server.api.callers import CallersFileError, parse_callers
from execgw.server.config import Settings
from execgw.server.embedded import GatewayThread

from .deploy_files import (
    DEPLOY,
    env_names_in,
    known_env_names,
    parses_as_execgw_command,
    port_of,
    served_health_services,
    settings_env_names,
    settings_from_environment,
    yaml_documents,
)
from .dockerfile import environment as dockerfile_environment
from .dockerfile import runtime as dockerfile_runtime

COMPOSE = DEPLOY / "compose.yaml"
KUBERNETES = DEPLOY / "kubernetes" / "execgw.yaml"
SECRET_EXAMPLE = DEPLOY / "kubernetes" / "secret.example.yaml"
INIT_SCRIPT = DEPLOY / "compose" / "mariadb-init.sh"
# What ${NAME:?message} / ${NAME:-default} stand for when the file is used (an IB Gateway address).
INTERPOLATED = {"EXECGW_IB_PAPER": "host.docker.internal:4002"}


def image_user() -> int:
    return int(dockerfile_runtime().last("USER").partition(":")[0])


def image_listen() -> str:
    return dockerfile_environment(dockerfile_runtime())["EXECGW_LISTEN"]


def interpolate(value: Any) -> str:
    """A compose value with ${NAME...} replaced as compose would, given INTERPOLATED."""
    def one(found: re.Match[str]) -> str:
        name, operator, rest = found.group(1), found.group(2) or "", found.group(3) or ""
        if name in INTERPOLATED:
            return INTERPOLATED[name]
        assert operator == ":-", f"${{{name}}} has no default and the test gives it no value"
        return rest
    return re.sub(r"\$\{([A-Z0-9_]+)(?:(:[-?])([^}]*))?\}", one, str(value))


def compose() -> dict[str, Any]:
    (document,) = yaml_documents(COMPOSE)
    return document


def service(name: str) -> dict[str, Any]:
    return compose()["services"][name]


def compose_environment(name: str) -> dict[str, str]:
    return {key: interpolate(value) for key, value in service(name).get("environment", {}).items()}


def kubernetes() -> dict[str, dict[str, Any]]:
    return {document["kind"]: document for document in yaml_documents(KUBERNETES)}


def pod() -> dict[str, Any]:
    return kubernetes()["Deployment"]["spec"]["template"]["spec"]


def container(name: str) -> dict[str, Any]:
    (found,) = [c for c in pod()["containers"] + pod().get("initContainers", []) if c["name"] == name]
    return found


def container_environment(name: str) -> dict[str, str]:
    return {item["name"]: str(item["value"]) for item in container(name).get("env", [])}


def probes() -> dict[str, dict[str, Any]]:
    return {kind: container("execgw")[kind] for kind in ("startupProbe", "livenessProbe", "readinessProbe")}


def healthcheck_service(command: list[str]) -> str:
    """The --service a deploy/docker/healthcheck.py command line asks (default "")."""
    return command[command.index("--service") + 1] if "--service" in command else ""


@pytest.fixture(scope="module")
def serving_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    folder = tmp_path_factory.mktemp("gateway")
    gateway = GatewayThread(Settings(database_url=f"sqlite:///{folder / 'execgw.sqlite3'}",
                                     listen="127.0.0.1:0")).start()
    try:
        yield gateway
    finally:
        gateway.stop()


def health_of(gateway: GatewayThread, service_name: str) -> int:
    with grpc.insecure_channel(gateway.target) as channel:
        return health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service_name), timeout=5).status


# -- every file ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [COMPOSE, KUBERNETES, SECRET_EXAMPLE, INIT_SCRIPT],
                         ids=lambda p: p.relative_to(DEPLOY).as_posix())
def test_every_execgw_name_mentioned_is_one_execgw_reads(path: Path):
    unknown = env_names_in(path.read_text(encoding="utf-8")) - known_env_names()
    assert not unknown, f"{path.name} names variables nothing in execgw reads: {sorted(unknown)}"


# -- compose -------------------------------------------------------------------------------------


def test_compose_runs_the_database_the_migration_then_the_gateway():
    services = compose()["services"]
    assert set(services) == {"db", "migrate", "execgw"}
    assert service("migrate")["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert service("execgw")["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}
    for name in ("migrate", "execgw"):
        assert service(name)["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
        parses_as_execgw_command(service(name)["command"])
    assert service("migrate")["command"] == ["db", "upgrade"]
    assert service("execgw")["command"] == ["serve"]
    assert "ports" not in service("db"), "the database is reached on the compose network only"


def test_compose_gateway_environment_is_settings_that_pass_the_bind_guard(monkeypatch: pytest.MonkeyPatch):
    for name in ("migrate", "execgw"):
        names = set(compose_environment(name))
        assert names <= settings_env_names(), names - settings_env_names()
    settings = settings_from_environment(monkeypatch, compose_environment("execgw"))
    check_bind(settings)  # a non-loopback port: TLS and callers are configured, so it is allowed
    assert not settings.insecure_allow_remote
    assert settings.ib_paper == INTERPOLATED["EXECGW_IB_PAPER"]


def test_compose_publishes_the_port_the_gateway_listens_on():
    listen_port = port_of(compose_environment("execgw")["EXECGW_LISTEN"])
    assert listen_port == port_of(image_listen())
    (published,) = service("execgw")["ports"]
    assert int(str(published).rsplit(":", 1)[1]) == listen_port


def test_compose_health_checks_ask_what_the_gateway_serves(serving_gateway: GatewayThread):
    test = service("execgw")["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "/opt/execgw/healthcheck.py"]
    asked = healthcheck_service(test)
    assert asked in served_health_services()
    assert health_of(serving_gateway, asked) == health_pb2.HealthCheckResponse.SERVING
    # The certificate's name the check expects is the one compose's openssl line puts in it.
    tls_name = test[test.index("--tls-name") + 1]
    assert f"subjectAltName=DNS:{tls_name}" in COMPOSE.read_text(encoding="utf-8")
    assert service("execgw")["stop_grace_period"] == "30s"


def test_compose_secrets_are_mounted_where_the_settings_point():
    defined = compose()["secrets"]
    for name in ("db", "migrate", "execgw"):
        mounted = set(service(name).get("secrets", []))
        assert mounted <= set(defined), mounted - set(defined)
        for key, value in compose_environment(name).items():
            if key.endswith("_FILE"):
                assert value.startswith("/run/secrets/") and value.removeprefix("/run/secrets/") in mounted, \
                    f"{name}: {key}={value} is not a secret the service mounts"
    for secret in defined.values():
        assert secret["file"].startswith("./secrets/")  # deploy/secrets: ignored by git
    assert (DEPLOY / "secrets" / ".gitignore").read_text().splitlines()[-2:] == ["*", "!.gitignore"]


def test_compose_database_accounts_are_the_ones_the_init_script_makes():
    script = INIT_SCRIPT.read_text(encoding="utf-8")
    names = dict(re.findall(r"(?m)^(execgw_\w+)=(\S+)$", script))
    runtime = make_url(compose_environment("execgw")["EXECGW_DATABASE_URL"])
    migration = make_url(compose_environment("migrate")["EXECGW_DATABASE_URL"])
    assert (runtime.username, runtime.database) == (names["execgw_runtime_user"], names["execgw_database"])
    assert (migration.username, migration.database) == (names["execgw_migration_user"], names["execgw_database"])
    assert runtime.password is None and migration.password is None
    assert runtime.host == migration.host == "db"
    # What the script reads is mounted into the database container.
    volumes = service("db")["volumes"]
    assert "./compose/mariadb-init.sh:/docker-entrypoint-initdb.d/10-execgw-accounts.sh:ro" in volumes
    assert "./mysql/grants.sql:/etc/execgw/grants.sql:ro" in volumes and "/etc/execgw/grants.sql" in script
    for secret in re.findall(r"/run/secrets/(\w+)", script):
        assert secret in service("db")["secrets"], secret
    for volume in volumes:
        source = volume.split(":")[0]
        assert not source.startswith(".") or (DEPLOY / source).is_file(), source
    # The image's entrypoint sources a non-executable script (so it has docker_process_sql).
    assert not INIT_SCRIPT.stat().st_mode & 0o111


# -- Kubernetes ----------------------------------------------------------------------------------


def test_kubernetes_environment_is_settings_that_pass_the_bind_guard(monkeypatch: pytest.MonkeyPatch):
    for name in ("execgw", "migrate"):
        names = set(container_environment(name))
        assert names <= settings_env_names(), names - settings_env_names()
    settings = settings_from_environment(monkeypatch, container_environment("execgw"))
    check_bind(settings)  # plaintext for the kubelet's gRPC probe, acknowledged (see the file)
    assert settings.callers_file is not None, "callers must still present their token"
    assert container("execgw")["args"] == ["serve"] and container("migrate")["args"] == ["db", "upgrade"]
    parses_as_execgw_command(container("execgw")["args"])
    parses_as_execgw_command(container("migrate")["args"])


def test_kubernetes_ports_are_the_one_the_gateway_listens_on():
    listen_port = port_of(container_environment("execgw")["EXECGW_LISTEN"])
    assert listen_port == port_of(image_listen())
    (port,) = container("execgw")["ports"]
    assert port["containerPort"] == listen_port
    for kind, probe in probes().items():
        assert probe["grpc"]["port"] == listen_port, kind
    (service_port,) = kubernetes()["Service"]["spec"]["ports"]
    assert service_port["targetPort"] == port["name"]
    assert kubernetes()["Service"]["spec"]["selector"] == kubernetes()["Deployment"]["spec"]["selector"]["matchLabels"]
    (rule,) = kubernetes()["NetworkPolicy"]["spec"]["ingress"]
    assert [p["port"] for p in rule["ports"]] == [listen_port]


def test_kubernetes_probes_ask_what_the_gateway_serves(serving_gateway: GatewayThread):
    for kind, probe in probes().items():
        asked = probe["grpc"].get("service", "")  # unset: "", the gateway as a whole
        assert asked in served_health_services(), (kind, asked)
        assert health_of(serving_gateway, asked) == health_pb2.HealthCheckResponse.SERVING, (kind, asked)
    assert probes()["readinessProbe"]["grpc"]["service"] == "execgw.v1.ExecutionService"


def test_kubernetes_runs_one_non_root_locked_down_replica_with_resources():
    deployment = kubernetes()["Deployment"]["spec"]
    assert deployment["replicas"] == 1 and deployment["strategy"] == {"type": "Recreate"}
    security = pod()["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] == image_user()
    assert pod()["terminationGracePeriodSeconds"] >= 30
    for name in ("execgw", "migrate"):
        context = container(name)["securityContext"]
        assert context["allowPrivilegeEscalation"] is False and context["readOnlyRootFilesystem"] is True
        assert context["capabilities"]["drop"] == ["ALL"]
        requests = container(name)["resources"]["requests"]
        assert requests.get("cpu") and requests.get("memory"), name


def test_kubernetes_secrets_are_mounted_read_only_where_the_settings_point():
    (secret,) = yaml_documents(SECRET_EXAMPLE)
    keys = set(secret["stringData"])
    volumes = {volume["name"]: volume for volume in pod()["volumes"]}
    for name in ("execgw", "migrate"):
        mounts = {m["mountPath"]: m for m in container(name)["volumeMounts"]}
        for key, value in container_environment(name).items():
            if not key.endswith("_FILE"):
                continue
            folder, _, file_name = value.rpartition("/")
            assert folder in mounts, f"{name}: {key}={value} is in no mount"
            mount = mounts[folder]
            assert mount["readOnly"] is True and "subPath" not in mount  # a subPath never sees updates
            source = volumes[mount["name"]]["secret"]
            assert source["secretName"] == secret["metadata"]["name"]
            assert file_name in {item["path"] for item in source["items"]}
            assert {item["key"] for item in source["items"]} <= keys
            assert source["defaultMode"] == 0o440  # the owner and fsGroup read; nobody writes


def test_the_secret_example_holds_placeholders_the_gateway_refuses():
    (secret,) = yaml_documents(SECRET_EXAMPLE)
    data = secret["stringData"]
    for key in ("db-password", "db-migrate-password"):
        assert data[key].startswith("REPLACE-ME"), key
    with pytest.raises(CallersFileError):
        parse_callers(data["callers.toml"].encode(), Path("callers.toml"))
