"""Who may call the gateway: callers by name, each with a token hash, permissions and accounts.

The callers file is TOML, written by ``execgw caller add`` and readable by hand::

    [callers.backend]
    token_sha256 = "9f86d0…"            # SHA-256 (hex) of the bearer token; the token itself is nowhere
    permissions = ["read", "paper"]      # read: GetRun/ListRuns/WatchRun; paper / live: submit and cancel
    accounts = ["DU1234567"]             # optional: only these IB accounts (unset: every account)
    certificate_names = ["backend.internal"]  # optional: an mTLS client certificate CN or SAN that is this caller

Only a hash is stored: the tokens are 256 random bits, so a plain SHA-256 cannot be reversed or
guessed, and the file leaks nothing usable when read. No salt or slow hash is needed for that
reason (they protect low-entropy passwords).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import os
import re
import secrets
import tempfile
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError

CALLER_NAME = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"
TOKEN_PREFIX = "execgw_"  # makes a leaked token recognisable to secret scanners and to people


class Permission(enum.StrEnum):
    READ = "read"
    PAPER = "paper"
    LIVE = "live"


class CallersFileError(ValueError):
    """The callers file is missing or not valid; the message names the file and the problem, never a token."""


@dataclass(frozen=True)
class Caller:
    """An authenticated caller. ``accounts`` None means every account."""

    name: str
    permissions: frozenset[Permission]
    accounts: frozenset[str] | None = None

    def may(self, permission: Permission) -> bool:
        return permission in self.permissions

    def may_use_account(self, account: str | None) -> bool:
        """A caller limited to accounts never reaches IB's default account (an empty account): it
        could be any account of the login."""
        return self.accounts is None or (bool(account) and account in self.accounts)


# The embedded default: on loopback without a callers file, everyone on this machine is "local".
# Never live: live trading always needs a configured caller.
LOCAL_CALLER = Caller("local", frozenset({Permission.READ, Permission.PAPER}))


class _CallerEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    token_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    permissions: list[Permission] = Field(min_length=1)
    accounts: list[str] | None = Field(None, min_length=1)
    certificate_names: list[str] = Field(default_factory=list)


class _CallersDocument(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    callers: dict[str, _CallerEntry] = Field(default_factory=dict)


def new_token() -> str:
    """A bearer token: 256 random bits, URL-safe, with a recognisable prefix."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Callers:
    """The configured callers, looked up by token or by certificate name."""

    def __init__(self, entries: dict[str, _CallerEntry]) -> None:
        self._by_hash: list[tuple[bytes, Caller]] = []
        self._by_certificate: dict[str, Caller] = {}
        for name, entry in entries.items():
            caller = Caller(
                name, frozenset(entry.permissions), frozenset(entry.accounts) if entry.accounts else None
            )
            if entry.token_sha256:
                self._by_hash.append((bytes.fromhex(entry.token_sha256), caller))
            for certificate_name in entry.certificate_names:
                self._by_certificate[certificate_name] = caller
        self.names = sorted(entries)
        self._entries = entries

    def described(self) -> list[str]:
        """One line per caller, for `execgw caller list`: never the hash, which is the token's stand-in."""
        return [
            f"{name}: {','.join(entry.permissions)}; accounts {','.join(entry.accounts) if entry.accounts else 'all'}; "
            f"token {'set' if entry.token_sha256 else 'none'}; certificate names {','.join(entry.certificate_names) or 'none'}"
            for name, entry in sorted(self._entries.items())
        ]

    def by_token(self, token: str) -> Caller | None:
        presented = hashlib.sha256(token.encode()).digest()
        found = None
        for stored, caller in self._by_hash:
            # Every entry is compared, in constant time each: how long this takes says nothing
            # about which entry, or how much of one, matched.
            if hmac.compare_digest(stored, presented):
                found = caller
        return found

    def by_certificate(self, names: Iterable[str]) -> Caller | None:
        for name in names:
            caller = self._by_certificate.get(name)
            if caller is not None:
                return caller
        return None


def load_callers(path: Path) -> Callers:
    return Callers(_read(path).callers)


def parse_callers(content: bytes, path: Path) -> Callers:
    """The callers in a callers file's content, already read from ``path`` (named in errors)."""
    return Callers(_parse(content, path).callers)


def _read(path: Path) -> _CallersDocument:
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        raise CallersFileError(f"callers file {path} does not exist (create it with `execgw caller add`)") from None
    except OSError as exc:
        raise CallersFileError(f"callers file {path} cannot be read: {exc.strerror or exc}") from None
    return _parse(content, path)


def _parse(content: bytes, path: Path) -> _CallersDocument:
    try:
        raw = tomllib.loads(content.decode("utf-8"))
    except UnicodeDecodeError as exc:
        # The message of a decode error quotes the byte; the position is enough to find it.
        raise CallersFileError(f"callers file {path} is not UTF-8 text (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        # tomllib says where, quoting at most a key or one character; values (the hashes) never.
        raise CallersFileError(f"callers file {path} is not valid TOML: {exc}") from None
    try:
        document = _CallersDocument.model_validate(raw)
    except ValidationError as exc:
        raise CallersFileError(f"callers file {path} is not valid: {exc}") from None
    for name in document.callers:
        if not _valid_name(name):
            raise CallersFileError(f"callers file {path}: caller name {name!r} must match {CALLER_NAME}")
    return document


def _valid_name(name: str) -> bool:
    return re.fullmatch(CALLER_NAME, name) is not None


def add_caller(
    path: Path,
    name: str,
    permissions: Iterable[Permission],
    *,
    accounts: Iterable[str] | None = None,
    certificate_names: Iterable[str] = (),
) -> str:
    """Adds a caller with a new token to the file (created if missing); returns the token, which
    is stored nowhere: only its hash is written."""
    if not _valid_name(name):
        raise CallersFileError(f"caller name {name!r} must match {CALLER_NAME}")
    document = _read(path) if path.exists() else _CallersDocument()
    if name in document.callers:
        raise CallersFileError(f"caller {name!r} is already in {path}; remove it first to give it a new token")
    token = new_token()
    document.callers[name] = _CallerEntry(
        token_sha256=token_hash(token), permissions=sorted(set(permissions)),
        accounts=sorted(set(accounts)) if accounts else None, certificate_names=list(certificate_names),
    )
    _write(path, document)
    return token


def remove_caller(path: Path, name: str) -> None:
    """Removes a caller (and so revokes its token and certificate names)."""
    document = _read(path)
    if document.callers.pop(name, None) is None:
        raise CallersFileError(f"no caller {name!r} in {path}")
    _write(path, document)


def _write(path: Path, document: _CallersDocument) -> None:
    # Written beside the old file and renamed over it: a gateway (or a crash) never sees half a file.
    text = tomli_w.dumps(document.model_dump(mode="json", exclude_none=True))
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
