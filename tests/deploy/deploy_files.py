"""What the deployment tests share: where the files are, the names the gateway really reads and
serves (taken from its code, never retyped), and the YAML loader."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from execgw.client import cli as client_cli
from execgw.client import tls as client_tls
from execgw.client import token as client_token
from execgw.server.app import SERVICE_NAME, endpoint_health_name
from execgw.server.cli import build_parser
from execgw.server.config import Settings, split_host_port
from execgw.server.db import engine as db_engine
from execgw.server.db import migrations

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"

ENV_NAME = re.compile(r"\bEXECGW_[A-Z0-9_]+\b")


def settings_env_names() -> set[str]:
    """Every variable the settings loader reads: the prefix and each field, upper case."""
    prefix = Settings.model_config["env_prefix"]
    return {f"{prefix}{name}".upper() for name in Settings.model_fields}


def known_env_names() -> set[str]:
    """Every EXECGW_* name some part of execgw reads: the settings, and what the client commands
    and `db upgrade` read besides (a comment may mention those)."""
    return settings_env_names() | {
        client_tls.CA_ENV, client_tls.CERT_ENV, client_tls.KEY_ENV,
        client_token.TOKEN_ENV, client_token.TOKEN_FILE_ENV, client_cli.TARGET_ENV,
        db_engine.DATABASE_URL_ENV, migrations.MIGRATIONS_DIR_ENV,
    }


def env_names_in(text: str) -> set[str]:
    return set(ENV_NAME.findall(text))


def served_health_services() -> set[str]:
    """The names the gateway's health service reports: itself ("" and the API), each IB endpoint."""
    return {"", SERVICE_NAME, endpoint_health_name("paper"), endpoint_health_name("live")}


def port_of(listen: str) -> int:
    return split_host_port(listen)[1]


def parses_as_execgw_command(arguments: list[str]) -> None:
    """Fails the test unless `execgw <arguments>` is a command line the real CLI accepts."""
    try:
        build_parser().parse_args(arguments)
    except SystemExit as exc:  # argparse's way of refusing
        pytest.fail(f"`execgw {' '.join(arguments)}` is refused by the CLI (exit {exc.code})")


def settings_from_environment(monkeypatch: pytest.MonkeyPatch, environment: dict[str, str]) -> Settings:
    """The settings the gateway makes of exactly this environment (nothing else EXECGW_* set)."""
    for name in list(os.environ):
        if name.startswith("EXECGW_"):
            monkeypatch.delenv(name)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return Settings()


def yaml_documents(path: Path) -> list[Any]:
    """The YAML documents of a file, parsed by PyYAML (a test extra). Without it the YAML checks
    are skipped on a developer's machine and fail in CI, where a skip would hide them."""
    try:
        import yaml
    except ImportError:
        message = "PyYAML is not installed: pip install -e '.[test]'"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    with path.open(encoding="utf-8") as file:
        return list(yaml.safe_load_all(file))
