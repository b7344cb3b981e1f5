"""The callers file as a running gateway serves it: read at start, read again on SIGHUP and
whenever the file changes, so `execgw caller add` / `remove` take effect without a restart.

When to look: every authentication check stats the file (no read) and compares its device,
inode, size, mtime and ctime with those of the version in use; only a changed file is read and
parsed. On every check rather than at most once a second, so that a removed caller's very next
call is refused: there is no window in which a revoked token still trades, and one stat per RPC
costs microseconds next to the call's own hashing and database work. `execgw caller` writes a
new file and renames it over the old one, so every edit is a new inode; ctime also catches an
edit in place that put the old mtime back (`cp -p`, `touch -r`).

A file that cannot be used (missing, unreadable, not TOML, not valid) keeps the callers in use,
and an ERROR names the file and the problem, once per version of the file rather than at every
call. Messages never hold a token: the file keeps only hashes, and its errors echo no values.

Everything here runs on the gateway's event loop (the interceptor and the SIGHUP handler), one
at a time; the file is a few hundred bytes on local disk, so reading it there blocks nothing.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from execgw.server.api.callers import Callers, CallersFileError, parse_callers

log = logging.getLogger(__name__)

# What changes whenever the file's content may have: (device, inode, size, mtime, ctime).
FileVersion = tuple[int, int, int, int, int]


def _version_of(status: os.stat_result) -> FileVersion:
    return status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns


def _version_at(path: Path) -> FileVersion | None:
    try:
        return _version_of(os.stat(path))
    except OSError:
        return None  # missing or unreadable: reading it says which


def _load(path: Path) -> tuple[Callers, FileVersion]:
    """The callers and the version they were read from: stat and read go through one open file,
    so the version is that of the bytes parsed (a rename meanwhile shows as a change later)."""
    try:
        with path.open("rb") as file:
            status = os.fstat(file.fileno())
            content = file.read()
    except FileNotFoundError:
        raise CallersFileError(f"callers file {path} does not exist") from None
    except OSError as error:
        raise CallersFileError(f"callers file {path} cannot be read: {error.strerror or error}") from None
    callers = parse_callers(content, path)
    _warn_if_others_may_write(path, status)
    return callers, _version_of(status)


def _warn_if_others_may_write(path: Path, status: os.stat_result) -> None:
    # Whoever may write the file may add a caller holding `live`, served from the next call. Said
    # once per version read, as the TLS key's mode is; not refused, the operator decides.
    if os.name == "posix" and status.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        log.warning("callers file %s may be written by other users (mode %o): anyone who can write it can add a "
                    "caller that trades; make it writable by the service's owner only (chmod 600)",
                    path, stat.S_IMODE(status.st_mode))


class CallersFile:
    """The callers of one file, kept current. A bad file at start raises CallersFileError (start-up
    stops, naming the file); a bad file later keeps the callers already in use."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.callers, version = _load(path)
        self._version: FileVersion | None = version
        log.info("callers from %s: %s", path, _names(self.callers))

    def refresh(self) -> None:
        """Reads the file again if it is not the version last read (whether that one was good or bad)."""
        if _version_at(self.path) != self._version:
            self._reload("changed")

    def reload(self) -> bool:
        """Reads the file now, changed or not (SIGHUP). False when it could not be used."""
        return self._reload("reloaded on SIGHUP")

    def _reload(self, why: str) -> bool:
        seen = _version_at(self.path)
        try:
            callers, version = _load(self.path)
        except CallersFileError as error:
            # Remembered as seen, so an unchanged bad file is neither read nor reported again
            # until it changes (or the next SIGHUP).
            self._version = seen
            log.error("%s; the callers in use stay: %s", error, _names(self.callers))
            return False
        before = self.callers.names
        self.callers, self._version = callers, version
        log.info("callers file %s %s: callers now %s (before: %s)", self.path, why, _names(callers),
                 ", ".join(before) or "none")
        return True


def _names(callers: Callers) -> str:
    return ", ".join(callers.names) or "none"
