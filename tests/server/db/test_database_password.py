"""`execgw db upgrade` and `execgw serve` against MariaDB as a user with a password, given in every
way the gateway takes one: the password reaches the server (the schema is created) and never
appears in anything the commands print or log."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

pytestmark = pytest.mark.mysql

EXECGW = Path(sys.executable).parent / "execgw"
# Every way of giving the password; the URL forms are also what `ps` would show, hence the warning.
FORMS = ["userinfo", "query-password", "query-passwd", "env", "env-file", "flag-file"]


@dataclass
class PasswordUser:
    host_url: str  # mysql+pymysql://USER@127.0.0.1:PORT/DATABASE, no password
    password: str
    database: str
    admin_url: str

    def tables(self) -> set[str]:
        engine = create_engine(self.admin_url)
        try:
            return set(inspect(engine).get_table_names(schema=self.database))
        finally:
            engine.dispose()


@pytest.fixture
def password_user(fresh_mysql_url: str) -> Iterator[PasswordUser]:
    """A MariaDB user with a password, allowed on a fresh database; dropped afterwards."""
    url = make_url(fresh_mysql_url)
    user, password = f"execgw_pw_{uuid.uuid4().hex[:8]}", f"Pw{uuid.uuid4().hex}"
    admin = create_engine(fresh_mysql_url)
    try:
        with admin.begin() as conn:
            conn.execute(text(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'"))
            conn.execute(text(f"GRANT ALL ON `{url.database}`.* TO '{user}'@'%'"))
        yield PasswordUser(
            url.set(username=user, password=None).render_as_string(hide_password=False), password,
            str(url.database), fresh_mysql_url,
        )
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP USER IF EXISTS '{user}'@'%'"))
        admin.dispose()


def arguments_and_environment(form: str, user: PasswordUser, tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXECGW_")}
    url = make_url(user.host_url)
    secret_file = tmp_path / "db-password"
    secret_file.write_text(user.password + "\n")
    secret_file.chmod(0o600)
    if form == "userinfo":
        return ["--database-url", url.set(password=user.password).render_as_string(hide_password=False)], env
    if form in ("query-password", "query-passwd"):
        key = form.split("-")[1]
        return ["--database-url", f"{user.host_url}?{key}={user.password}"], env
    if form == "env":
        return ["--database-url", user.host_url], {**env, "EXECGW_DATABASE_PASSWORD": user.password}
    if form == "env-file":
        return [], {**env, "EXECGW_DATABASE_URL": user.host_url, "EXECGW_DATABASE_PASSWORD_FILE": str(secret_file)}
    assert form == "flag-file"
    return ["--database-url", user.host_url, "--database-password-file", str(secret_file)], env


@pytest.mark.parametrize("form", FORMS)
def test_db_upgrade_uses_the_password_and_never_shows_it(form: str, password_user: PasswordUser, tmp_path: Path):
    arguments, env = arguments_and_environment(form, password_user, tmp_path)
    done = subprocess.run([str(EXECGW), "db", "upgrade", *arguments], env=env, capture_output=True, text=True,
                          timeout=60)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert password_user.password not in output
    assert "schema_migrations" in password_user.tables()
    assert "upgraded (" in done.stdout
    in_the_url = form.startswith(("userinfo", "query"))
    assert ("visible to every local user (ps)" in output) == in_the_url


@pytest.mark.parametrize("url_form", ["{user}:{pw}@", "?password={pw}", "malformed"])
def test_db_upgrade_that_fails_never_shows_the_password(url_form: str, password_user: PasswordUser, tmp_path: Path):
    wrong = f"Wrong{uuid.uuid4().hex}"
    url = make_url(password_user.host_url)
    if url_form == "malformed":
        given = f"mysql+pymysql//{url.username}:{wrong}@127.0.0.1:{url.port}/{url.database}"
    elif url_form.startswith("?"):
        given = f"{password_user.host_url}?password={wrong}"
    else:
        given = url.set(password=wrong).render_as_string(hide_password=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXECGW_")}
    done = subprocess.run([str(EXECGW), "db", "upgrade", "--database-url", given], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1
    assert wrong not in done.stdout + done.stderr
    assert "failed" in done.stderr


@pytest.mark.parametrize("form", FORMS)
def test_serve_uses_the_password_and_never_shows_it(
    form: str, password_user: PasswordUser, tmp_path: Path, free_port, eventually, serving
):
    arguments, env = arguments_and_environment(form, password_user, tmp_path)
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen([str(EXECGW), "serve", "--listen", f"127.0.0.1:{port}", *arguments],
                                   cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            eventually(lambda: serving(channel, "execgw.ib.paper") or process.poll() is not None, 60,
                       "the gateway did not start")
        assert process.poll() is None, log.read_text()
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    output = log.read_text()
    assert password_user.password not in output
    assert f"database mysql+pymysql://{make_url(password_user.host_url).username}" in output
    assert "trade_runs" in password_user.tables()
    in_the_url = form.startswith(("userinfo", "query"))
    assert ("visible to every local user (ps)" in output) == in_the_url
