"""The database password is masked in every form a URL can carry it, and may come from the
environment or a file instead of the URL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from execgw.server.db.engine import display_url
from execgw.server.db.secrets import (
    PASSWORD_ENV,
    PASSWORD_FILE_ENV,
    DatabasePasswordError,
    carries_password,
    masked_url,
    password_from,
    password_from_environment,
    with_password,
)

SECRET = "s3cr3tPW"


@pytest.mark.parametrize(("url", "shown"), [
    (f"mysql+pymysql://execgw:{SECRET}@db:3306/execgw", "mysql+pymysql://execgw:***@db:3306/execgw"),
    (f"mysql+pymysql://execgw@db/execgw?password={SECRET}", "mysql+pymysql://execgw@db/execgw?password=***"),
    (f"mysql+pymysql://execgw@db/execgw?charset=utf8mb4&passwd={SECRET}",
     "mysql+pymysql://execgw@db/execgw?charset=utf8mb4&passwd=***"),
    (f"mysql+pymysql://execgw@db/execgw?ssl_ca=/etc/ca.pem&auth_token={SECRET}",
     "mysql+pymysql://execgw@db/execgw?ssl_ca=/etc/ca.pem&auth_token=***"),
    (f"mysql+pymysql://execgw:{SECRET}@db/execgw?password={SECRET}&password={SECRET}",
     "mysql+pymysql://execgw:***@db/execgw?password=***&password=***"),
    # Not parseable by SQLAlchemy: still shown without the password.
    (f"mysql+pymysql//execgw:{SECRET}@db/execgw?password={SECRET}", "mysql+pymysql//execgw:***@db/execgw?password=***"),
    (f"mysql+pymysql://execgw:{SECRET}@db:port/execgw", "mysql+pymysql://execgw:***@db:port/execgw"),
    ("sqlite:///./execgw-data/execgw.sqlite3", "sqlite:///./execgw-data/execgw.sqlite3"),
])
def test_every_form_of_password_in_a_url_is_masked(url: str, shown: str) -> None:
    assert masked_url(url) == display_url(url) == shown
    assert SECRET not in shown
    assert carries_password(url) == (SECRET in url)


def test_a_url_object_with_a_merged_password_is_masked() -> None:
    merged = with_password("mysql+pymysql://execgw@db/execgw", SECRET)
    assert make_url(merged).password == SECRET
    assert display_url(merged) == "mysql+pymysql://execgw:***@db/execgw"


def test_a_password_given_twice_is_refused_without_showing_it(tmp_path: Path) -> None:
    with pytest.raises(DatabasePasswordError, match="already carries a password") as caught:
        with_password(f"mysql+pymysql://execgw@db/execgw?password={SECRET}", "other")
    assert SECRET not in str(caught.value)
    secret_file = tmp_path / "pw"
    secret_file.write_text(SECRET)
    with pytest.raises(DatabasePasswordError, match="given twice") as caught:
        password_from("other", secret_file)
    assert SECRET not in str(caught.value)


def test_the_password_file_loses_its_trailing_newline_only(tmp_path: Path) -> None:
    secret_file = tmp_path / "pw"
    secret_file.write_text(f" {SECRET}@/\n")
    assert password_from(None, secret_file) == f" {SECRET}@/"
    with pytest.raises(DatabasePasswordError, match="cannot read the database password file"):
        password_from(None, tmp_path / "missing")


def test_the_environment_gives_the_password_or_its_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    monkeypatch.delenv(PASSWORD_FILE_ENV, raising=False)
    assert password_from_environment() is None
    monkeypatch.setenv(PASSWORD_ENV, SECRET)
    assert password_from_environment() == SECRET
    monkeypatch.delenv(PASSWORD_ENV)
    secret_file = tmp_path / "pw"
    secret_file.write_text(SECRET + "\n")
    monkeypatch.setenv(PASSWORD_FILE_ENV, str(secret_file))
    assert password_from_environment() == SECRET
