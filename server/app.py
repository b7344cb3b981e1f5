"""The gateway process: database, engine, IB sessions, gRPC server, and an orderly shutdown.

Start-up and shutdown live here in one readable place. Shutdown order matters: health goes
NOT_SERVING first (load balancers stop sending), watch streams end with UNAVAILABLE (clients
resume), the gRPC server drains, the engine applies what IB already sent, then IB disconnects
and the writer finishes its last transaction.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import grpc
from grpc_health.v1 import health, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from sqlalchemy.engine import URL

from execgw.server.api.admin import AdminService, GatewayFacts, gateway_version
from execgw.server.api.auth import Authenticator, CallerAuthentication
from execgw.server.api.bind_guard import check_bind
from execgw.server.api.callers_file import CallersFile
from execgw.server.api.errors import RequestDecoding
from execgw.server.api.health import HealthWithReasons
from execgw.server.api.service import ExecutionService, ServiceLimits
from execgw.server.api.status_view import NOT_CONNECTED, not_taking_orders_reason
from execgw.server.api.tls import ServerCertificates, tls_files_of, transport_of
from execgw.server.api.watch_limits import server_options
from execgw.server.config import Settings, split_host_port
from execgw.server.db.engine import display_url, make_engine, resolve_database_url
from execgw.server.db.migrations import upgrade
from execgw.server.db.secrets import password_from, with_password
from execgw.server.engine.bus import EventBus
from execgw.server.engine.engine import ExecutionEngine
from execgw.server.engine.journal import Journal
from execgw.server.engine.registry import GatewayRegistry, advertised_address
from execgw.server.engine.runs import EngineTimings
from execgw.server.engine.store import Store
from execgw.server.engine.tail import ForeignRuns
from execgw.server.engine.tasks import TaskSupervisor
from execgw.server.engine.validation import OrderRules
from execgw.server.guards import account_guard_of, pre_trade_limits_of
from execgw.server.ib.endpoint import Endpoint
from execgw.server.ib.session import IBSession
from execgw.server.metrics.exposition import check_metrics_bind
from execgw.server.metrics.gateway import GatewayMetrics
from execgw.v1 import admin_pb2, admin_pb2_grpc, execution_pb2, execution_pb2_grpc

if TYPE_CHECKING:  # the simulator is imported only when the embedded default starts it
    from execgw.sim.simulator import Simulator

log = logging.getLogger(__name__)

SERVICE_NAME = execution_pb2.DESCRIPTOR.services_by_name["ExecutionService"].full_name
ADMIN_SERVICE_NAME = admin_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name
# Health name of the database: SERVING while it takes the writer's transactions.
DATABASE_HEALTH_NAME = "execgw.database"
DATABASE_PROBE_INTERVAL = 1.0  # seconds: how old the database's health answer may be
DATABASE_DOWN = ("the database is not taking the gateway's writes: IB's reports are held until it is back, "
                 "new runs are refused")


def database_url_of(settings: Settings) -> str | URL:
    """The database URL with the password from EXECGW_DATABASE_PASSWORD or its file merged in;
    it stays in memory and is shown only through `display_url`."""
    secret = settings.database_password.get_secret_value() if settings.database_password else None
    password = password_from(secret, settings.database_password_file)
    return with_password(resolve_database_url(settings.database_url), password)


def endpoint_health_name(mode: str) -> str:
    """Health service name of one IB endpoint, e.g. `execgw.ib.paper`."""
    return f"execgw.ib.{mode}"


class Gateway:
    def __init__(self, settings: Settings, *, timings: EngineTimings | None = None) -> None:
        self.settings = settings
        self.timings = timings
        self.port: int = 0
        self.simulator: Simulator | None = None
        self._server: grpc.aio.Server | None = None
        self.certificates: ServerCertificates | None = None
        self.callers_file: CallersFile | None = None
        self._health = HealthWithReasons()
        self.engine: ExecutionEngine | None = None
        self.store: Store | None = None
        self.registry: GatewayRegistry | None = None
        self.foreign_runs: ForeignRuns | None = None
        # Called if another process takes this gateway's name over (serve() stops the process).
        self.on_name_lost: Callable[[], None] = lambda: None
        self.bus = EventBus(settings.watcher_queue_events)
        self.bus.observe(Journal())
        self._tasks = TaskSupervisor()
        # Off unless configured: no registry, no observer, no thread, no port.
        self.metrics = GatewayMetrics(self.bus) if settings.metrics_listen else None
        self.metrics_port: int = 0

    async def start(self) -> int:
        settings = self.settings
        # Refused before anything starts: an exposed port, unreadable or mismatched TLS files.
        check_bind(settings)
        check_metrics_bind(settings)
        tls_files = tls_files_of(settings)
        self.certificates = ServerCertificates(tls_files) if tls_files else None
        # The callers file is read before anything starts: a bad one stops start-up, naming the file.
        authenticator = Authenticator.from_settings(settings)
        self.callers_file = authenticator.callers_file
        authentication = CallerAuthentication(authenticator)
        if self.metrics is not None and settings.metrics_listen:
            # Early: a metrics port in use stops start-up before the database or IB are touched.
            self.metrics_port = self.metrics.serve(settings.metrics_listen)
        database_url = database_url_of(settings)
        log.info("database %s", display_url(database_url))
        await asyncio.get_running_loop().run_in_executor(None, upgrade, database_url)
        self.store = Store(make_engine(database_url, timeout_seconds=settings.database_timeout_seconds))
        # The name before anything acts on runs: a live holder stops start-up (GatewayNameTaken).
        self.registry = GatewayRegistry(self.store, settings.gateway_name, settings.gateway_lease_seconds,
                                        on_lost=lambda: self.on_name_lost())
        await self.registry.claim()
        self.foreign_runs = ForeignRuns(self.store, self.bus, settings.gateway_name,
                                        settings.foreign_watch_poll_seconds)
        timings = self.timings or EngineTimings(
            cancel_wait=settings.cancel_wait_seconds,
            reconcile_timeout=settings.reconcile_timeout_seconds,
            commission_grace=settings.commission_grace_seconds,
        )
        self.engine = ExecutionEngine(self.store, self.bus, timings, account_guard_of(settings),
                                      gateway_name=settings.gateway_name)
        if self.metrics is not None:
            self.metrics.attach_engine(self.engine, self.store)
        for endpoint in await self._endpoints():
            self.engine.add_session(
                IBSession(endpoint, self.engine.on_ib_event, pacing_per_second=settings.pacing_per_second)
            )
        self.engine.connection_listeners.append(self._endpoint_health)
        for mode in self.engine.sessions:
            await self._set_health(endpoint_health_name(mode), False)
        # The upgrade above just wrote to it; from here the writer's transactions tell.
        self.engine.reports.database_listeners.append(self._database_health)
        await self._set_health(DATABASE_HEALTH_NAME, self.engine.reports.database_ok)
        # The writer tells of an outage only when it has something to write: a database gone
        # while the gateway is idle is found by asking it, when health is asked (at most once a second).
        self._health.add_probe(DATABASE_HEALTH_NAME, self._probe_database, DATABASE_PROBE_INTERVAL)
        await self.engine.start()

        # A request above max_request_bytes is refused by gRPC itself (RESOURCE_EXHAUSTED) before it
        # is decoded: the largest valid run is a few tens of KB, and every byte is held in memory.
        options = [*server_options(settings.max_watch_streams),
                   ("grpc.max_receive_message_length", settings.max_request_bytes)]
        server = grpc.aio.server(options=options, interceptors=[authentication, RequestDecoding()])
        limits = ServiceLimits(
            max_orders_per_run=settings.max_orders_per_run,
            default_deadline=timedelta(seconds=settings.default_deadline_seconds),
            max_deadline=timedelta(seconds=settings.max_deadline_seconds),
            heartbeat_seconds=settings.heartbeat_seconds,
            order_rules=OrderRules(
                max_quantity=settings.max_order_quantity,
                currencies=settings.stock_currencies,
                exchanges=settings.stock_exchanges,
            ),
            max_watch_streams=settings.max_watch_streams,
            max_watch_streams_per_caller=settings.max_watch_streams_per_caller,
            pre_trade=pre_trade_limits_of(settings),
        )
        service = ExecutionService(self.engine, self.store, self.bus, limits,
                                   self.metrics.service if self.metrics is not None else None,
                                   foreign_runs=self.foreign_runs, registry=self.registry)
        if self.metrics is not None:
            self.metrics.attach_service(service)
        execution_pb2_grpc.add_ExecutionServiceServicer_to_server(service, server)
        admin_facts = GatewayFacts(
            name=settings.gateway_name, version=gateway_version(), started_at=datetime.now(UTC),
            database_url=display_url(database_url), messages_per_second=settings.pacing_per_second,
            read_timeout=settings.database_timeout_seconds,
        )
        admin_pb2_grpc.add_AdminServiceServicer_to_server(AdminService(self.engine, self.store, admin_facts), server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, ADMIN_SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        host, port = split_host_port(settings.listen)
        if self.certificates is not None:
            self.port = server.add_secure_port(f"{host}:{port}", self.certificates.credentials())
        else:
            self.port = server.add_insecure_port(f"{host}:{port}")
        await server.start()
        self._server = server
        await self.registry.advertise(advertised_address(settings.advertise_address, host, self.port))
        self.registry.start_heartbeat()
        await self._set_health("", True)
        await self._set_health(SERVICE_NAME, True)
        log.info("execgw listening on %s:%d (%s)", host, self.port, transport_of(tls_files))
        return self.port

    @property
    def reloads_on_sighup(self) -> bool:
        """Whether SIGHUP has files to read again (TLS certificate, callers file): known from the
        settings alone, so the handler can be in place before the gateway is reachable."""
        return self.settings.tls_cert_file is not None or self.settings.callers_file is not None

    def reload_files(self) -> None:
        """SIGHUP: the TLS files and the callers file read again. Each keeps what it has when
        its new version fails the checks, and logs why. During start-up, what is not loaded yet
        is skipped: it is about to be read anyway."""
        if self.certificates is not None:
            self.certificates.reload()
        if self.callers_file is not None:
            self.callers_file.reload()

    async def _endpoints(self) -> list[Endpoint]:
        settings = self.settings
        endpoints = []
        if settings.ib_paper:
            host, port = split_host_port(settings.ib_paper)
        else:
            host, port = "127.0.0.1", await self._start_simulator()
        endpoints.append(Endpoint("paper", host, port, settings.ib_client_id, settings.ib_time_zone))
        if settings.ib_live and settings.live_enabled:
            host, port = split_host_port(settings.ib_live)
            endpoints.append(Endpoint("live", host, port, settings.ib_client_id, settings.ib_time_zone))
        elif settings.ib_live:
            log.warning("ib_live is set but live_enabled is false: live runs are refused")
        return endpoints

    async def _start_simulator(self) -> int:
        from execgw.sim.simulator import Simulator

        simulator = Simulator(accounts=[self.settings.sim_account])
        port = await simulator.start("127.0.0.1", 0)
        self.simulator = simulator
        log.info("no EXECGW_IB_PAPER: paper trading goes to the built-in TWS simulator on 127.0.0.1:%d", port)
        return port

    def _endpoint_health(self, mode: str, connected: bool) -> None:
        reason = ""
        if not connected and self.engine is not None:
            # The words GetStatus uses too; told "not ready" by a listener, it is never "".
            reason = not_taking_orders_reason(self.engine, mode) or NOT_CONNECTED
        # Owned: a failure to update health is logged, and shutdown waits for the update.
        self._tasks.spawn(self._set_health(endpoint_health_name(mode), connected, reason), f"health-{mode}")

    def _database_health(self, ok: bool) -> None:
        """The report intake's listener: told at each transition, on the loop."""
        self._tasks.spawn(self._set_health(DATABASE_HEALTH_NAME, ok, "" if ok else DATABASE_DOWN), "health-database")

    async def _probe_database(self) -> tuple[bool, str]:
        assert self.engine is not None and self.store is not None
        if not self.engine.reports.database_ok:
            return False, DATABASE_DOWN
        try:
            await self.store.ping()  # a hung server: bounded by the driver's database_timeout_seconds
        except Exception as exc:  # whatever the driver says: the database is not usable now
            return False, f"the database does not answer ({type(exc).__name__}): new runs are refused until it does"
        return True, ""

    async def _set_health(self, name: str, serving: bool, reason: str = "") -> None:
        await self._health.set_with_reason(name, serving, reason)

    async def wait_connected(self, timeout: float = 15.0) -> bool:
        assert self.engine is not None
        results = [await s.wait_ready(timeout) for s in self.engine.sessions.values()]
        return all(results)

    async def stop(self, grace: float = 5.0) -> None:
        log.info("execgw shutting down")
        await self._set_health("", False)
        await self._set_health(SERVICE_NAME, False)
        self.bus.close_all()
        if self._server is not None:
            await self._server.stop(grace)
        if self.engine is not None:
            await self.engine.stop()
        if self.foreign_runs is not None:
            await self.foreign_runs.stop()
        if self.registry is not None:
            await self.registry.release()  # after the engine: it acts on runs until then
        await self._tasks.stop()
        if self.metrics is not None:
            await self.metrics.stop()  # before the store closes: a run's mode may be being read
        if self.store is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.store.close)
        if self.simulator is not None:
            await self.simulator.stop()
        log.info("execgw stopped")


def freeze_startup_objects() -> None:
    """Takes what start-up made out of the cyclic garbage collector's sight (`gc.freeze`).

    Modules, gRPC's, SQLAlchemy's and pydantic's structures, the settings: some 90,000 objects that
    live as long as the process, which every full collection walked again. Measured in a gateway
    after two runs of 3,000 fills: a full collection took 42-65 ms, a pause every commit and
    every watcher waited through (the latency's p99); with them frozen, 1.2-2.8 ms. Garbage is
    collected first so that none of it is frozen with them. (Only `execgw serve`: a test process
    starting many embedded gateways would pay a full collection for each and freeze its own
    objects with them.)"""
    gc.collect()
    gc.freeze()


async def serve(settings: Settings) -> None:
    """Runs the gateway until SIGTERM or SIGINT, then shuts it down gracefully. SIGHUP reloads
    the TLS certificate files (for new connections) and the callers file, whichever are configured."""
    gateway = Gateway(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # Before start: once a client can see the gateway serving, a SIGHUP must not find the
    # default action (terminate) still in place. With nothing to reload, SIGHUP keeps it.
    if gateway.reloads_on_sighup:
        loop.add_signal_handler(signal.SIGHUP, gateway.reload_files)
    gateway.on_name_lost = stop.set  # another process holds the name now: this one must not act
    await gateway.start()
    freeze_startup_objects()
    try:
        await stop.wait()
    finally:
        await gateway.stop()
