"""deploy/Dockerfile, without a Docker engine (none runs here): what it copies builds the package,
its entry point is the package's console script, it runs as a non-root user, the port it exposes
is the one the gateway listens on, its health check is a file it copies in, and the build context
(Dockerfile.dockerignore) lets in what the build needs and nothing else."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from .deploy_files import DEPLOY, ROOT, parses_as_execgw_command, port_of, settings_env_names
from .dockerfile import build, copies, environment, exec_form, runtime, stages

DOCKERIGNORE = DEPLOY / "Dockerfile.dockerignore"


def test_the_image_is_a_python_slim_one_running_as_a_non_root_user():
    assert all(stage.base.startswith("python:") and "-slim" in stage.base for stage in stages())
    user = runtime().last("USER")
    uid, _, gid = user.partition(":")
    # Numeric, so Kubernetes' runAsNonRoot can check it without reading /etc/passwd.
    assert uid.isdigit() and int(uid) != 0 and (not gid or int(gid) != 0), user


def test_the_entrypoint_is_the_packages_console_script_and_the_command_is_serve():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    entrypoint = exec_form(runtime().last("ENTRYPOINT"))
    assert entrypoint == ["execgw"] and "execgw" in scripts
    command = exec_form(runtime().last("CMD"))
    assert command == ["serve"]
    parses_as_execgw_command(command)
    # The virtualenv's bin is on PATH, so "execgw" is the installed console script.
    assert environment(runtime())["PATH"].startswith("/opt/execgw/bin:")


def test_the_exposed_port_is_the_one_the_gateway_listens_on_and_env_names_are_settings():
    env = environment(runtime())
    gateway_env = {name for name in env if name.startswith("EXECGW_")}
    assert gateway_env <= settings_env_names(), gateway_env - settings_env_names()
    assert runtime().all("EXPOSE") == [str(port_of(env["EXECGW_LISTEN"]))]


def test_the_healthcheck_runs_a_file_the_image_copies_in():
    healthcheck = runtime().last("HEALTHCHECK")
    options, _, command = healthcheck.partition("CMD ")
    assert "--start-period=" in options and "--timeout=" in options
    program = exec_form(command)
    assert program[0] == "python", program  # the virtualenv's, first on PATH: it has grpcio
    copied = {destination: sources for sources, destination in copies(runtime())}
    assert copied.get(program[1]) == ["deploy/docker/healthcheck.py"], copied
    assert (ROOT / "deploy/docker/healthcheck.py").is_file()
    assert runtime().last("STOPSIGNAL") == "SIGTERM"


def context_allowlist() -> list[str]:
    lines = [line.strip() for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()]
    patterns = [line for line in lines if line and not line.startswith("#")]
    assert patterns[0] == "*", "the context is an allowlist: everything out first"
    return [pattern[1:].rstrip("/") for pattern in patterns if pattern.startswith("!")]


def test_the_build_context_lets_in_every_copied_file_and_every_package_folder():
    allowed = context_allowlist()
    copied = [source.rstrip("/") for stage in stages() for sources, _ in copies(stage) for source in sources]
    for source in copied:
        assert (ROOT / source).exists(), f"COPY {source}: no such file"
        assert any(source == a or source.startswith(a + "/") for a in allowed), \
            f"COPY {source}: Dockerfile.dockerignore keeps it out of the build context"
    # Everything the distribution is made of is copied into the build stage.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    needed = set(project["tool"]["setuptools"]["package-dir"].values())
    needed |= {"pyproject.toml", project["project"]["readme"]}
    built_from = [source.rstrip("/") for sources, _ in copies(build()) for source in sources]
    for path in needed:
        assert any(path == s or path.startswith(s + "/") for s in built_from), f"the build stage lacks {path}"


def test_nothing_private_can_enter_the_build_context():
    allowed = context_allowlist()
    for private in (".git", ".venv", "execgw-data", "deploy/secrets", "tests"):
        assert not any(private == a or private.startswith(a + "/") or a.startswith(private + "/")
                       for a in allowed), private


def test_what_the_build_stage_copies_builds_a_wheel_with_the_console_script(tmp_path: Path):
    """The build stage's `pip install /src`, offline: the files its COPY lines take, and no
    others, make a wheel carrying the gateway, its migrations and the `execgw` command."""
    pytest.importorskip("setuptools", minversion="77")  # pyproject's build requirement (PEP 639 license)
    source = tmp_path / "src"  # the build stage's WORKDIR
    assert build().last("WORKDIR") == "/src"
    for sources, destination in copies(build()):
        assert destination.endswith("/"), destination  # a folder: files keep their names in it
        into = source / destination
        into.mkdir(parents=True, exist_ok=True)
        for item in sources:
            if (ROOT / item).is_dir():  # a folder's contents go into the destination
                shutil.copytree(ROOT / item, into, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(ROOT / item, into / Path(item).name)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "-w", str(tmp_path / "dist"), str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (wheel,) = (tmp_path / "dist").glob("execgw-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        console = archive.read(entry_points).decode()
    assert "execgw = execgw.server.cli:main" in console
    for expected in ("execgw/server/app.py", "execgw/server/db/sql/base/20260101_base_schema.sql",
                     "execgw/v1/execution_pb2.py", "execgw/client/client.py", "execgw/sim/simulator.py"):
        assert expected in names, expected
