"""Which database errors are an outage (wait and retry: nothing is lost) and which are a bug in
what we tried to write (retrying would hold IB's reports for ever).

SQLAlchemy raises OperationalError for both a lost connection and, on MariaDB, a CHECK
constraint that refused a row (4025), so the class alone does not tell.
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, InterfaceError

# MySQL / MariaDB client and server codes that mean "the server is unreachable or busy".
_MYSQL_TRANSIENT = frozenset({
    1040,  # too many connections
    1053,  # server shutdown in progress
    1205,  # lock wait timeout
    1213,  # deadlock: the transaction may be retried
    2002, 2003,  # can't connect (socket / TCP)
    2006,  # server has gone away
    2013,  # lost connection during query (also a read timeout on a hung server)
    2014, 2045, 2055,  # commands out of sync, can't open shared memory, lost connection at handshake
})
_SQLITE_TRANSIENT = ("database is locked", "unable to open database", "disk i/o error")


def is_outage(exc: BaseException) -> bool:
    """True for a database that is down, unreachable, hung or busy; False for a refused write."""
    if isinstance(exc, InterfaceError):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    code = orig.args[0] if orig is not None and orig.args else None
    if isinstance(code, int):
        return code in _MYSQL_TRANSIENT
    text = str(orig).lower()
    return any(marker in text for marker in _SQLITE_TRANSIENT)
