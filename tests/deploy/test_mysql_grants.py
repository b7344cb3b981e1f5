"""deploy/mysql/grants.sql on the local MariaDB: the accounts it makes are enough, and no more.

A fresh database and two fresh accounts, made by grants.sql exactly as an operator applies it.
`execgw db upgrade` runs the migrations as the migration account; then the real gateway, as the
runtime account, takes a whole run (gRPC client -> server -> ibapi -> TCP -> the simulator) to
SUCCESS with its fill stored. The runtime account is then refused every change to the schema
and every delete. The compose file's MariaDB init script is run too, on secret files. Every
account and database made here is dropped afterwards.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pymysql
import pytest
from sqlalchemy.engine import URL, make_url

from execgw.server.config import Settings
from execgw.server.db.migrations import discover_migrations, split_sql_statements
from execgw.server.embedded import GatewayThread
from execgw.server.engine.runs import EngineTimings
from execgw.sim.thread import SimulatorThread
from execgw.v1 import execution_pb2 as pb
from execgw.v1 import execution_pb2_grpc as pb_grpc

from .deploy_files import DEPLOY

pytestmark = [pytest.mark.mysql, pytest.mark.timeout(120)]

GRANTS = DEPLOY / "mysql" / "grants.sql"
INIT_SCRIPT = DEPLOY / "compose" / "mariadb-init.sh"
EXECGW = Path(sys.executable).parent / "execgw"
RUNTIME_PRIVILEGES = {"SELECT", "INSERT", "UPDATE"}
MIGRATION_PRIVILEGES = {"SELECT", "INSERT", "UPDATE", "CREATE", "ALTER", "REFERENCES"}
# MySQL/MariaDB's "command denied to user" (1142) and "access denied to database" (1044).
DENIED = {1142, 1044}
SHORT_TIMINGS = EngineTimings(cancel_wait=1.5, reconcile_timeout=5.0, commission_grace=1.0, retry_interval=0.3)


@dataclass
class Accounts:
    server: URL  # the administrator's (the test server's root)
    database: str
    runtime_user: str
    runtime_password: str
    migration_user: str
    migration_password: str

    def url(self, user: str) -> str:
        """The URL the gateway is given: no password in it (that comes from a file)."""
        return self.server.set(username=user, password=None, database=self.database).render_as_string(
            hide_password=False)

    def variables(self) -> dict[str, str]:
        return {
            "execgw_database": self.database, "execgw_client_host": "%",
            "execgw_runtime_user": self.runtime_user, "execgw_runtime_password": self.runtime_password,
            "execgw_migration_user": self.migration_user, "execgw_migration_password": self.migration_password,
        }


def connect(server: URL, user: str | None = None, password: str | None = None, database: str | None = None
            ) -> pymysql.Connection:
    return pymysql.connect(
        host=server.host or "127.0.0.1", port=server.port or 3306,
        user=user if user is not None else server.username or "root",
        password=password if password is not None else server.password or "",
        database=database, autocommit=True, connect_timeout=5,
    )


def run_script(conn: pymysql.Connection, sql: str, variables: dict[str, str] | None = None) -> None:
    """Runs a script statement by statement in one session, as the `mariadb` client does with
    `SOURCE`, after setting the session variables (sent as parameters, never pasted in)."""
    with conn.cursor() as cursor:
        for name, value in (variables or {}).items():
            cursor.execute(f"SET @{name} = %s", (value,))
        for statement in split_sql_statements(sql):
            cursor.execute(statement)
            while cursor.nextset():
                pass


def grants_of(conn: pymysql.Connection, user: str) -> dict[str, set[str]]:
    """SHOW GRANTS as {"`db`.*": {"SELECT", ...}}, the bare USAGE line left out."""
    found: dict[str, set[str]] = {}
    with conn.cursor() as cursor:
        cursor.execute("SHOW GRANTS FOR %s@'%%'", (user,))
        for (line,) in cursor.fetchall():
            matched = re.match(r"GRANT (.+?) ON (\S+) TO ", line)
            assert matched, line
            privileges = {p.strip() for p in matched.group(1).split(",")}
            if privileges != {"USAGE"}:
                found[matched.group(2)] = privileges
    return found


def drop_everything(server: URL, database: str, *users: str) -> None:
    with connect(server) as conn, conn.cursor() as cursor:
        for user in users:
            cursor.execute("DROP USER IF EXISTS %s@'%%'", (user,))
        cursor.execute(f"DROP DATABASE IF EXISTS `{database}`")


def fresh_names() -> tuple[str, str, str]:
    tag = uuid.uuid4().hex[:10]
    return f"execgw_deploy_{tag}", f"egw_rt_{tag}", f"egw_mg_{tag}"


def awkward_password() -> str:
    # Quotes and a backslash: grants.sql must pass them through QUOTE() intact.
    return f"pw'{secrets.token_urlsafe(18)}\\\"x"


@pytest.fixture
def accounts(mysql_server_url: str) -> Iterator[Accounts]:
    server = make_url(mysql_server_url)
    database, runtime_user, migration_user = fresh_names()
    made = Accounts(server, database, runtime_user, awkward_password(), migration_user, awkward_password())
    try:
        with connect(server) as conn:
            run_script(conn, GRANTS.read_text(encoding="utf-8"), made.variables())
        yield made
    finally:
        drop_everything(server, database, runtime_user, migration_user)


def password_file(tmp_path: Path, name: str, password: str) -> Path:
    path = tmp_path / name
    path.write_text(password + "\n", encoding="utf-8")  # as `echo` writes it: the newline is ignored
    path.chmod(0o600)
    return path


def refused(conn: pymysql.Connection, statement: str) -> int:
    """The error code the server answers `statement` with; fails the test if it is carried out."""
    with conn.cursor() as cursor:
        try:
            cursor.execute(statement)
        except pymysql.err.MySQLError as exc:
            return exc.args[0]
    pytest.fail(f"{statement!r} was carried out")


def run_one_order_through_the_gateway(settings: Settings) -> tuple[pb.Run, list[pb.RunEvent]]:
    sim = SimulatorThread()
    sim.start()
    try:
        gateway = GatewayThread(settings.model_copy(update={"ib_paper": f"127.0.0.1:{sim.port}"}),
                                timings=SHORT_TIMINGS).start()
        try:
            with grpc.insecure_channel(gateway.target) as channel:
                stub = pb_grpc.ExecutionServiceStub(channel)
                order = pb.OrderSpec(client_order_id=f"deploy-{uuid.uuid4().hex[:8]}", symbol="AAPL",
                                     side=pb.ORDER_SIDE_BUY, quantity=10)
                run_id = stub.SubmitRun(pb.SubmitRunRequest(mode=pb.TRADING_MODE_PAPER, orders=[order]),
                                        timeout=10).run.run_id
                events = [m.event for m in stub.WatchRun(pb.WatchRunRequest(run_id=run_id), timeout=30)
                          if m.HasField("event")]
                return stub.GetRun(pb.GetRunRequest(run_id=run_id), timeout=10).run, events
        finally:
            gateway.stop()
    finally:
        sim.stop()


def test_grants_sql_gives_each_account_exactly_its_privileges(accounts: Accounts):
    with connect(accounts.server) as conn:
        assert grants_of(conn, accounts.runtime_user) == {f"`{accounts.database}`.*": RUNTIME_PRIVILEGES}
        assert grants_of(conn, accounts.migration_user) == {f"`{accounts.database}`.*": MIGRATION_PRIVILEGES}


def test_least_privileged_accounts_migrate_and_run_a_whole_run(accounts: Accounts, tmp_path: Path):
    # 1) The schema, with `execgw db upgrade` as the migration account, its password in a file.
    environment = {k: v for k, v in os.environ.items() if not k.startswith("EXECGW_")}
    environment |= {
        "EXECGW_DATABASE_URL": accounts.url(accounts.migration_user),
        "EXECGW_DATABASE_PASSWORD_FILE": str(password_file(tmp_path, "migrate", accounts.migration_password)),
    }
    done = subprocess.run([str(EXECGW), "db", "upgrade"], env=environment, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"upgraded ({len(discover_migrations())} applied)" in done.stdout, done.stdout

    # 2) The gateway as the runtime account: its start-up schema check finds nothing to do, and a
    #    run goes through end to end.
    settings = Settings(
        database_url=accounts.url(accounts.runtime_user),
        database_password_file=password_file(tmp_path, "runtime", accounts.runtime_password),
        listen="127.0.0.1:0", default_deadline_seconds=20, heartbeat_seconds=5,
    )
    run, events = run_one_order_through_the_gateway(settings)
    assert run.status == pb.RUN_STATUS_SUCCESS, run
    assert [order.status for order in run.orders] == [pb.ORDER_STATUS_FILLED]
    assert any(event.HasField("fill") for event in events)

    # 3) What the gateway wrote, read by the administrator.
    with connect(accounts.server, database=accounts.database) as conn, conn.cursor() as cursor:
        cursor.execute(
            "SELECT f.exec_id, f.filled_qty, f.commission FROM trade_fills f "
            "JOIN trade_orders o ON o.id = f.order_id WHERE o.run_id = %s", (run.run_id,))
        fills: list[Any] = list(cursor.fetchall())
        cursor.execute("SELECT status FROM trade_runs WHERE id = %s", (run.run_id,))
        (status,) = cursor.fetchone()
        # The registry of live gateways: claimed at start, released at the stop, as this account.
        cursor.execute("SELECT name, stopped_at IS NOT NULL FROM gateways")
        registered = cursor.fetchall()
    assert len(fills) == 1 and fills[0][0] and fills[0][1] == 10 and fills[0][2] is not None, fills
    assert status == "SUCCESS"
    assert registered == (("execgw", 1),), registered

    # 4) The runtime account can change no table and delete nothing; the migration account can
    #    drop and delete nothing either.
    with connect(accounts.server, accounts.runtime_user, accounts.runtime_password, accounts.database) as conn:
        for statement in ("DROP TABLE trade_fills", "TRUNCATE TABLE trade_events", "CREATE TABLE probe (id INT)",
                          "ALTER TABLE trade_runs ADD COLUMN probe INT", "DELETE FROM trade_fills",
                          "CREATE INDEX probe ON trade_runs (status)", f"DROP DATABASE `{accounts.database}`"):
            assert refused(conn, statement) in DENIED, statement
    with connect(accounts.server, accounts.migration_user, accounts.migration_password, accounts.database) as conn:
        for statement in ("DROP TABLE trade_fills", "DELETE FROM trade_fills"):
            assert refused(conn, statement) in DENIED, statement
    with connect(accounts.server, database=accounts.database) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM trade_fills")
        assert cursor.fetchone() == (1,)


def test_reapplying_narrows_broader_grants_and_sets_the_new_password(accounts: Accounts):
    with connect(accounts.server) as conn:
        with conn.cursor() as cursor:
            cursor.execute(f"GRANT ALL PRIVILEGES ON `{accounts.database}`.* TO %s@'%%'", (accounts.runtime_user,))
            cursor.execute("GRANT SELECT ON mysql.* TO %s@'%%'", (accounts.runtime_user,))
        old = accounts.runtime_password
        accounts.runtime_password = awkward_password()
        run_script(conn, GRANTS.read_text(encoding="utf-8"), accounts.variables())
        assert grants_of(conn, accounts.runtime_user) == {f"`{accounts.database}`.*": RUNTIME_PRIVILEGES}
    connect(accounts.server, accounts.runtime_user, accounts.runtime_password).close()
    with pytest.raises(pymysql.err.OperationalError):
        connect(accounts.server, accounts.runtime_user, old).close()


@pytest.mark.parametrize("left_out", ["execgw_runtime_password", "execgw_database", "execgw_migration_user"])
def test_grants_sql_with_a_variable_unset_stops_and_makes_nothing(mysql_server_url: str, left_out: str):
    server = make_url(mysql_server_url)
    database, runtime_user, migration_user = fresh_names()
    variables = Accounts(server, database, runtime_user, "pw-1", migration_user, "pw-2").variables()
    variables[left_out] = ""
    try:
        with connect(server) as conn:
            with pytest.raises(pymysql.err.ProgrammingError, match=f"needs these set first: @{left_out}"):
                run_script(conn, GRANTS.read_text(encoding="utf-8"), variables)
            # And a client that goes on after the error (`SOURCE` from `mariadb -e` does) makes
            # nothing either: every later statement fails too.
            with conn.cursor() as cursor:
                for statement in split_sql_statements(GRANTS.read_text(encoding="utf-8")):
                    try:
                        cursor.execute(statement)
                    except pymysql.err.MySQLError:
                        pass
                cursor.execute("SELECT user FROM mysql.user WHERE user IN (%s, %s)", (runtime_user, migration_user))
                assert cursor.fetchall() == ()
                cursor.execute("SHOW DATABASES LIKE %s", (database,))
                assert cursor.fetchall() == ()
    finally:
        drop_everything(server, database, runtime_user, migration_user)


def test_the_compose_init_script_makes_both_accounts_from_the_secret_files(mysql_server_url: str, tmp_path: Path):
    """deploy/compose/mariadb-init.sh, sourced as the mariadb image sources it, with its
    docker_process_sql standing in for the image's: the SQL it produces makes both accounts with
    the passwords in the secret files, whatever characters they hold."""
    server = make_url(mysql_server_url)
    database, runtime_user, migration_user = fresh_names()
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    runtime_password, migration_password = awkward_password() + "$(touch pwned)`;", awkward_password()
    (secrets_dir / "db_password").write_text(runtime_password + "\r\n", encoding="utf-8")
    (secrets_dir / "db_migrate_password").write_text(migration_password, encoding="utf-8")
    script = INIT_SCRIPT.read_text(encoding="utf-8")
    names = dict(re.findall(r"(?m)^(execgw_\w+)=(\S+)$", script))
    assert names == {"execgw_database": "execgw", "execgw_runtime_user": "execgw",
                     "execgw_migration_user": "execgw_migrate"}
    # Fresh names instead of the compose file's (this MariaDB is shared), and the paths of here.
    script = script.replace("execgw_database=execgw\n", f"execgw_database={database}\n")
    script = script.replace("execgw_runtime_user=execgw\n", f"execgw_runtime_user={runtime_user}\n")
    script = script.replace("execgw_migration_user=execgw_migrate\n", f"execgw_migration_user={migration_user}\n")
    script = script.replace("/run/secrets/", f"{secrets_dir}/").replace("/etc/execgw/grants.sql", str(GRANTS))
    (tmp_path / "init.sh").write_text(script, encoding="utf-8")
    produced = tmp_path / "init.sql"
    done = subprocess.run(
        ["bash", "-c", 'set -eo pipefail; docker_process_sql() { cat >"$OUT"; }; . "$SCRIPT"'],
        env={"PATH": os.environ["PATH"], "OUT": str(produced), "SCRIPT": str(tmp_path / "init.sh")},
        cwd=tmp_path, capture_output=True, text=True, timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "pwned").exists()
    sql = produced.read_text(encoding="utf-8")
    assert runtime_password not in sql and migration_password not in sql  # hex only
    try:
        with connect(server) as conn:
            run_script(conn, sql)
            assert grants_of(conn, runtime_user) == {f"`{database}`.*": RUNTIME_PRIVILEGES}
            assert grants_of(conn, migration_user) == {f"`{database}`.*": MIGRATION_PRIVILEGES}
        connect(server, runtime_user, runtime_password, database).close()
        connect(server, migration_user, migration_password, database).close()
    finally:
        drop_everything(server, database, runtime_user, migration_user)
