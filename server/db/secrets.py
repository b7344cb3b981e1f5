"""The database password: how a URL is shown, and where the password may come from besides it.

A password in ``--database-url`` is readable by every local user through ``ps``, and one in the
URL's query (``?password=…``) is not masked by SQLAlchemy's own rendering. The gateway therefore
shows URLs only through ``masked_url`` and also takes the password from
``EXECGW_DATABASE_PASSWORD`` or from a file (``EXECGW_DATABASE_PASSWORD_FILE``), merged into the
URL in memory only.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import quote

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

PASSWORD_ENV = "EXECGW_DATABASE_PASSWORD"
PASSWORD_FILE_ENV = "EXECGW_DATABASE_PASSWORD_FILE"
MASK = "***"

# A query parameter whose name contains one of these carries a secret: pymysql takes `password`
# and `passwd` from the query, and proxies and plugins add their own tokens.
_SECRET_KEY_PARTS = ("pass", "pwd", "secret", "token", "credential")

# For text that is not a URL SQLAlchemy can parse: mask what looks like user:PASSWORD@ and
# password=VALUE, so that even a mistyped URL is never shown with its password.
_USERINFO_PASSWORD = re.compile(r"(//[^/?#@:]*:)[^/?#]*@")
_QUERY_SECRET = re.compile(r"([?&;][^=&;#]*(?:" + "|".join(_SECRET_KEY_PARTS) + r")[^=&;#]*=)[^&;#]*", re.I)


class DatabasePasswordError(ValueError):
    """The password was given in more than one place, or its file cannot be read. The message
    names the places, never the password."""


def is_secret_key(key: str) -> bool:
    lowered = key.lower()
    return any(part in lowered for part in _SECRET_KEY_PARTS)


def masked_url(url: str | URL) -> str:
    """The URL with every password masked (``user:***@`` and ``?password=***``): the only form
    of a database URL that may be logged or printed."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError, TypeError):
        return _masked_text(str(url))
    shown = parsed.set(query={}).render_as_string(hide_password=True)
    pairs = []
    for key, values in parsed.query.items():
        for value in (values,) if isinstance(values, str) else values:
            pairs.append(f"{quote(key)}={MASK if is_secret_key(key) else quote(value, safe='/:,.')}")
    return f"{shown}?{'&'.join(pairs)}" if pairs else shown


def carries_password(url: str | URL) -> bool:
    """True when the URL itself holds a password, in its user part or its query."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError, TypeError):
        return _masked_text(str(url)) != str(url)
    return bool(parsed.password) or any(is_secret_key(key) for key in parsed.query)


def password_from(password: str | None, password_file: Path | None) -> str | None:
    """The password given directly (environment) or in a file; None when neither is set."""
    if password is not None and password_file is not None:
        raise DatabasePasswordError(
            f"the database password is given twice: {PASSWORD_ENV} and a password file ({password_file}); "
            "give one"
        )
    if password_file is None:
        return password
    try:
        text = password_file.read_text(encoding="utf-8")
    except OSError as exc:
        raise DatabasePasswordError(f"cannot read the database password file {password_file}: {exc.strerror}") from None
    # Editors and `echo` end the file with a newline that is not part of the password.
    return text.rstrip("\r\n")


def password_from_environment(password_file: Path | None = None) -> str | None:
    """For commands that do not load the gateway's settings (``execgw db upgrade``): the
    password from ``$EXECGW_DATABASE_PASSWORD`` or the file given (else
    ``$EXECGW_DATABASE_PASSWORD_FILE``)."""
    if password_file is None and os.environ.get(PASSWORD_FILE_ENV):
        password_file = Path(os.environ[PASSWORD_FILE_ENV])
    return password_from(os.environ.get(PASSWORD_ENV), password_file)


def with_password(url: str | URL, password: str | None) -> str | URL:
    """``url`` with ``password`` merged in; unchanged when there is no separate password."""
    if password is None:
        return url
    if carries_password(url):
        raise DatabasePasswordError(
            f"the database URL {masked_url(url)} already carries a password, and {PASSWORD_ENV} or a "
            "password file gives another; give it once"
        )
    return make_url(url).set(password=password)


def _masked_text(text: str) -> str:
    return _QUERY_SECRET.sub(rf"\g<1>{MASK}", _USERINFO_PASSWORD.sub(rf"\g<1>{MASK}@", text))
