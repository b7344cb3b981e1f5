"""Who may call the gateway: callers by name, each with a token hash, permissions and accounts.

The callers file is TOML, written by ``execgw caller add`` and readable by hand::

    [callers.backend]
    token_sha256 = "9f86d0…"            # SHA-256 (hex) of the bearer token; the token itself is nowhere
    permissions = ["read", "paper"]      # read: GetRun/ListRuns/WatchRun/GetStatus; paper / live: submit and cancel;
                                         # admin: settle UNKNOWN orders (with the order's paper / live)
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
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from execgw.server.engine.account_guard import spelled_as_ib_does

CALLER_NAME = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"
TOKEN_PREFIX = "execgw_"  # makes a leaked token recognisable to secret scanners and to people
# Runs name accounts in at most 32 letters or digits (validation.py): a longer one matches none.
LONGEST_ACCOUNT = 32


class Permission(enum.StrEnum):
    READ = "read"
    PAPER = "paper"
    LIVE = "live"
    ADMIN = "admin"


class CallersFileError(ValueError):
    """The callers file is missing or not valid; the message names the file and the problem, never a token."""


class CertificateOfSeveralCallers(Exception):
    """A client certificate whose names are listed for more than one caller."""

    def __init__(self, callers: list[str]) -> None:
        super().__init__(f"the client certificate's names are listed for several callers: "
                         f"{', '.join(repr(c) for c in callers)}")
        self.callers = callers


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
# Never live: live trading always needs a configured caller. It holds admin: settling an order
# also needs the order's mode permission, so "local" can settle paper orders only, which it may
# already place and cancel; and without a callers file there is no other caller to settle with,
# so withholding it would leave an UNKNOWN paper order UNKNOWN for good.
LOCAL_CALLER = Caller("local", frozenset({Permission.READ, Permission.PAPER, Permission.ADMIN}))


def ib_account_id(written: str) -> str:
    """An account as written by a person ("du1 ") in IB's spelling ("DU1"), as the settings'
    paper_accounts are. ValueError for what is no account id: an empty one would be IB's default
    account, which a caller limited to accounts never reaches, and anything else would match
    no run here yet match on MariaDB, whose collation ignores case (ListRuns showed "du1" the
    runs of DU1 that GetRun called missing)."""
    account = written.strip().upper()
    if not spelled_as_ib_does(account) or len(account) > LONGEST_ACCOUNT:
        # The value is not repeated: this goes to the gateway's log, and what was pasted into
        # the wrong field may be a token.
        raise ValueError("not an IB account id (1-32 letters and digits, e.g. DU1234567)")
    return account


class _CallerEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    token_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    permissions: list[Permission] = Field(min_length=1)
    accounts: list[str] | None = Field(None, min_length=1)
    certificate_names: list[str] = Field(default_factory=list)

    @field_validator("accounts")
    @classmethod
    def _ib_accounts(cls, accounts: list[str] | None) -> list[str] | None:
        if accounts is None:
            return None
        spelled: set[str] = set()
        for index, account in enumerate(accounts):
            try:
                spelled.add(ib_account_id(account))
            except ValueError as exc:
                raise ValueError(f"accounts[{index}]: {exc}") from None
        return sorted(spelled)

    @field_validator("certificate_names")
    @classmethod
    def _certificate_names(cls, names: list[str]) -> list[str]:
        # A certificate with an empty CN must not be anyone.
        if any(not name.strip() for name in names):
            raise ValueError("a certificate name may not be empty")
        return names


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
        """The caller a verified certificate's names (SANs and CN) are listed for; None if none.
        CertificateOfSeveralCallers when they name different callers: which one it is would
        otherwise depend on the order of the names in the certificate."""
        found = {caller.name: caller for name in names if (caller := self._by_certificate.get(name)) is not None}
        if len(found) > 1:
            raise CertificateOfSeveralCallers(sorted(found))
        return next(iter(found.values()), None)


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
    _refuse_ambiguity(document, path)
    return document


def _refuse_ambiguity(document: _CallersDocument, path: Path) -> None:
    """One token, one certificate name, one spelling of a name: one caller. An entry copied to
    make a new caller with its hash left as it was would otherwise make the old token whichever
    of the two comes last in the file (a reader's token trading live). Messages name callers,
    never the hash: it stands for the token."""
    holders: dict[str, list[str]] = {}
    for name, entry in document.callers.items():
        if entry.token_sha256:
            holders.setdefault(entry.token_sha256, []).append(name)
    for names in holders.values():
        if len(names) > 1:
            raise CallersFileError(f"callers file {path}: callers {', '.join(repr(n) for n in names)} have the "
                                   "same token_sha256; give each its own token (execgw caller add)")
    listed: dict[str, list[str]] = {}
    for name, entry in document.callers.items():
        for certificate_name in dict.fromkeys(entry.certificate_names):
            listed.setdefault(certificate_name, []).append(name)
    for certificate_name, names in listed.items():
        if len(names) > 1:
            raise CallersFileError(f"callers file {path}: certificate name {certificate_name!r} is listed for "
                                   f"callers {', '.join(repr(n) for n in names)}; a certificate is one caller")
    spellings: dict[str, list[str]] = {}
    for name in document.callers:
        spellings.setdefault(name.lower(), []).append(name)
    for names in spellings.values():
        if len(names) > 1:
            raise CallersFileError(f"callers file {path}: caller names {', '.join(repr(n) for n in sorted(names))} "
                                   "differ only in case; the books could not tell them apart")


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
    permissions = sorted(set(permissions))
    if not permissions:
        raise CallersFileError(f"caller {name!r} needs at least one permission: read, paper, live, admin")
    if accounts is not None:
        accounts = list(accounts)
        if not accounts:
            # Given but empty (`--accounts "$UNSET"`): "no account" must never become "every account".
            raise CallersFileError(f"caller {name!r}: accounts given but none named; leave accounts out for "
                                   "every account")
    with _editing(path):
        document = _read(path) if path.exists() else _CallersDocument()
        if name in document.callers:
            raise CallersFileError(f"caller {name!r} is already in {path}; remove it first to give it a new token")
        token = new_token()
        try:
            document.callers[name] = _CallerEntry(
                token_sha256=token_hash(token), permissions=permissions, accounts=accounts,
                certificate_names=list(certificate_names),
            )
        except ValidationError as exc:
            raise CallersFileError(f"caller {name!r} is not valid: {exc}") from None
        # Checked as the gateway will read it: a name in another case, a certificate name taken.
        _refuse_ambiguity(document, path)
        _write(path, document)
    return token


def remove_caller(path: Path, name: str) -> None:
    """Removes a caller (and so revokes its token and certificate names)."""
    with _editing(path):
        document = _read(path)
        if document.callers.pop(name, None) is None:
            raise CallersFileError(f"no caller {name!r} in {path}")
        _write(path, document)


@contextmanager
def _editing(path: Path) -> Iterator[None]:
    """One edit of the file at a time. Each edit reads the file and renames a changed copy over
    it; two at once each wrote back what it had read, so an `execgw caller add` beside a `remove`
    put the removed caller, and its revoked token, back (and adds were lost). The lock is a file
    of its own beside the callers file, as the callers file is replaced at every edit."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if os.name != "posix":
        yield  # no flock: edits there are the operator's to keep apart
        return
    import fcntl

    descriptor = os.open(path.with_name(f".{path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # and with it the lock


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
