"""The registry of live gateways: one row per gateway name in the shared database.

Several gateways run on one database (one per IB account or client id). Each owns the runs it
takes and, after a restart, resumes them. Two processes given the same name would both resume
the same runs and send, cancel and finish them twice, so a gateway claims its name at start-up
and keeps the claim fresh with a heartbeat; a second process finds the name held and refuses to
start, naming the holder.

A claim is free to take over when the holder stopped in order (`stopped_at`), when it ran on
this host and its process is gone (a gateway killed with SIGKILL and restarted at once must not
wait), or, from any host, when its lease expired (a host that died cannot be asked about its
processes). The lease is measured on the database's clock, never against another host's.

Every change is a conditional UPDATE on the row's `instance` (random per process): of two
processes taking over one stale row at once exactly one wins, on MySQL and on SQLite alike.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from execgw.server.db.models import RegisteredGateway, utcnow
from execgw.server.engine.store import Store

log = logging.getLogger(__name__)

# Heartbeats per lease: two may be lost (a slow database, a pause) before the lease runs out.
BEATS_PER_LEASE = 3
_CLAIM_ATTEMPTS = 3  # an INSERT that lost a race to another process's INSERT is retried


class GatewayNameTaken(RuntimeError):
    """Another live gateway holds this gateway's name; the message names it."""


@dataclass(frozen=True)
class Holder:
    """A registry row as the claimant saw it, with its age on the database's clock."""

    name: str
    instance: str
    address: str | None
    host: str
    pid: int
    started_at: datetime
    seen_at: datetime
    stopped_at: datetime | None
    silent_for: timedelta

    def describe(self) -> str:
        at = f", serving {self.address}" if self.address else ""
        return (f"pid {self.pid} on host {self.host}{at}, started {self.started_at:%Y-%m-%d %H:%M:%S} UTC, "
                f"last heartbeat {self.silent_for.total_seconds():.1f}s ago")


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host (signal 0 checks without sending)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: it exists
    return True


def advertised_address(configured: str | None, listen_host: str, port: int) -> str:
    """What callers elsewhere are told to use: advertise_address, else the bound address (this
    host's name in place of a wildcard, which means nothing to another machine)."""
    if configured:
        return configured
    host = socket.gethostname() if listen_host in ("", "0.0.0.0", "::") else listen_host
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def database_now(session: Session) -> datetime:
    """The database's clock in naive UTC: every gateway measures leases on the same clock.
    SQLite is a file on this machine: its clock is ours."""
    if session.get_bind().dialect.name in ("mysql", "mariadb"):
        value = session.scalar(text("SELECT UTC_TIMESTAMP(6)"))
        assert isinstance(value, datetime)
        return value
    return utcnow()


class GatewayRegistry:
    def __init__(
        self, store: Store, name: str, lease_seconds: float, *,
        host: str | None = None, pid: int | None = None, on_lost: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self.instance = uuid.uuid4().hex
        self.host = host or socket.gethostname()
        self.pid = os.getpid() if pid is None else pid
        self.lease = timedelta(seconds=lease_seconds)
        self.address: str | None = None
        self.claimed = False
        self._store = store
        self._on_lost = on_lost
        self._beating: asyncio.Task[None] | None = None

    # -- start-up and shutdown ----------------------------------------------------------------

    async def claim(self) -> None:
        """Takes the name, or raises GatewayNameTaken naming the live holder."""
        for _ in range(_CLAIM_ATTEMPTS):
            try:
                taken_over = await self._store.read(self._in_transaction(self._claim))
            except IntegrityError:
                continue  # another process inserted the row first: look at it again
            self.claimed = True
            if taken_over is not None:
                log.warning("gateway name %r taken over from %s", self.name, taken_over)
            log.info("gateway name %r claimed (pid %d on %s)", self.name, self.pid, self.host)
            return
        raise GatewayNameTaken(f"gateway name {self.name!r}: the registry row kept changing; try again")

    async def advertise(self, address: str) -> None:
        """Records where callers reach this gateway, once its port is bound."""
        self.address = address
        await self._store.read(self._in_transaction(self._refresh))

    def start_heartbeat(self) -> None:
        self._beating = asyncio.get_running_loop().create_task(self._beat(), name=f"registry-{self.name}")

    async def heartbeat(self) -> bool:
        """Refreshes the claim; False when another process has taken the name over."""
        return bool(await self._store.read(self._in_transaction(self._refresh)))

    async def release(self) -> None:
        """Marks the claim stopped, so a successor starts at once. Only ours: a row another
        process took over is left alone."""
        if self._beating is not None:
            self._beating.cancel()
            await asyncio.gather(self._beating, return_exceptions=True)
            self._beating = None
        if not self.claimed:
            return
        self.claimed = False
        try:
            await self._store.read(self._in_transaction(self._mark_stopped))
        except (OperationalError, InterfaceError) as exc:
            # The row stays: a restart on this host takes it over (the pid is gone), elsewhere
            # once the lease expires.
            log.warning("could not mark gateway name %r stopped: %s", self.name, exc)

    # -- what others ask ----------------------------------------------------------------------

    async def address_of(self, name: str) -> str | None:
        """Where the live gateway of that name serves, if it is running and said so."""

        def query(session: Session) -> str | None:
            return session.scalar(
                select(RegisteredGateway.address)
                .where(RegisteredGateway.name == name, RegisteredGateway.stopped_at.is_(None))
            )

        return await self._store.read(query)

    # -- the transactions ---------------------------------------------------------------------

    @staticmethod
    def _in_transaction(work: Callable[[Session], object]) -> Callable[[Session], object]:
        def transaction(session: Session) -> object:
            with session.begin():
                return work(session)

        return transaction

    def _claim(self, session: Session) -> str | None:
        """In one transaction: the name taken (None) or taken over (from whom), else raises."""
        now = database_now(session)
        row = session.get(RegisteredGateway, self.name)
        if row is None:
            session.add(RegisteredGateway(
                name=self.name, instance=self.instance, address=None, host=self.host, pid=self.pid,
                started_at=now, seen_at=now, stopped_at=None,
            ))
            session.flush()  # IntegrityError here when another process inserted it first
            return None
        holder = _holder(row, now)
        why = self._free(holder)
        if why is None:
            raise GatewayNameTaken(
                f"gateway name {self.name!r} is held by a live gateway: {holder.describe()}. Stop that "
                f"gateway or give this one another gateway_name (it would resume the same runs)"
            )
        taken = session.execute(
            update(RegisteredGateway)
            .where(RegisteredGateway.name == self.name, RegisteredGateway.instance == holder.instance)
            .values(instance=self.instance, address=None, host=self.host, pid=self.pid,
                    started_at=now, seen_at=now, stopped_at=None)
        ).rowcount
        if taken != 1:
            raise IntegrityError("gateway registry", None, Exception("taken over by another process meanwhile"))
        return f"{holder.describe()} ({why})"

    def _free(self, holder: Holder) -> str | None:
        """Why the holder's claim may be taken over, or None while it is alive."""
        if holder.stopped_at is not None:
            return "it stopped"
        if holder.host == self.host and not process_alive(holder.pid):
            return "its process is gone"
        if holder.silent_for > self.lease:
            return f"its lease of {self.lease.total_seconds():g}s expired"
        return None

    def _refresh(self, session: Session) -> bool:
        """The heartbeat: True while the row is still ours."""
        now = database_now(session)
        return session.execute(
            update(RegisteredGateway)
            .where(RegisteredGateway.name == self.name, RegisteredGateway.instance == self.instance,
                   RegisteredGateway.stopped_at.is_(None))
            .values(seen_at=now, address=self.address)
        ).rowcount == 1

    def _mark_stopped(self, session: Session) -> None:
        now = database_now(session)
        session.execute(
            update(RegisteredGateway)
            .where(RegisteredGateway.name == self.name, RegisteredGateway.instance == self.instance)
            .values(stopped_at=now, seen_at=now)
        )

    async def _beat(self) -> None:
        interval = self.lease.total_seconds() / BEATS_PER_LEASE
        while True:
            await asyncio.sleep(interval)
            try:
                held = await self.heartbeat()
            except (OperationalError, InterfaceError) as exc:
                # A database outage: the claim stays ours unless someone takes it over meanwhile,
                # which the next heartbeat that gets through finds out.
                log.warning("gateway %r heartbeat failed: %s", self.name, exc)
                continue
            if not held:
                self.claimed = False
                log.critical("gateway name %r was taken over by another process (this one was silent past "
                             "its lease): this gateway must stop", self.name)
                if self._on_lost is not None:
                    self._on_lost()
                return


def _holder(row: RegisteredGateway, now: datetime) -> Holder:
    return Holder(row.name, row.instance, row.address, row.host, row.pid, row.started_at, row.seen_at,
                  row.stopped_at, now - row.seen_at)
