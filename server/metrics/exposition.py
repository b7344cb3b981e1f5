"""The metrics port: prometheus_client's own HTTP server on a thread of its own, one registry per
gateway, and the check that keeps it on loopback unless the operator says otherwise.

The port serves plain HTTP without credentials. It cannot place orders, but it tells whoever
reaches it what this gateway trades: how many orders per mode, fills, when IB is cut off. So it
has its own override, `metrics_allow_remote`, rather than riding on `insecure_allow_remote`: that
one accepts an unprotected *order* port, and a gateway that has TLS and callers never needs it,
yet may well want Prometheus on another machine to scrape it. One flag, one exposure.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server

from execgw.server.api.bind_guard import RemoteBindRefused, is_loopback
from execgw.server.config import Settings, split_host_port

log = logging.getLogger(__name__)

THREAD_NAME = "execgw-metrics"


class MetricsPortUnavailable(RuntimeError):
    """`metrics_listen` cannot be bound (in use, not an address of this machine)."""


def check_metrics_bind(settings: Settings) -> None:
    """Returns when `metrics_listen` is unset, loopback, or allowed remote (warned); raises
    RemoteBindRefused otherwise, before anything starts."""
    if settings.metrics_listen is None:
        return
    host, _port = split_host_port(settings.metrics_listen)
    if is_loopback(host):
        return
    if settings.metrics_allow_remote:
        log.warning("metrics on %s are readable by anyone who reaches it, in plain HTTP (metrics_allow_remote "
                    "is set): order counts per mode, fills, IB connection state", settings.metrics_listen)
        return
    raise RemoteBindRefused(
        f"refusing to serve metrics on {settings.metrics_listen}: it is not a loopback address, and the metrics "
        "port has no TLS or credentials, so anyone who can reach it reads what this gateway trades. Serve them on "
        "127.0.0.1 (and let a local agent or proxy forward them), or pass --metrics-allow-remote "
        "(EXECGW_METRICS_ALLOW_REMOTE=true) to accept that"
    )


class MetricsServer:
    """prometheus_client's WSGI server for one registry, started and stopped with its gateway."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry
        self._httpd: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self, listen: str) -> int:
        """Binds `listen` (host:port, port 0 for any free one) and serves; returns the port."""
        host, port = split_host_port(listen)
        try:
            self._httpd, self._thread = start_http_server(port, addr=host, registry=self._registry)
        except OSError as exc:
            raise MetricsPortUnavailable(f"cannot serve metrics on {listen} (metrics_listen): {exc}") from exc
        self._thread.name = THREAD_NAME  # so an operator (and a test) can tell it from others
        bound = int(self._httpd.server_port)
        log.info("metrics on http://%s:%d/metrics", f"[{host}]" if ":" in host else host, bound)
        return bound

    async def stop(self) -> None:
        httpd, thread, self._httpd, self._thread = self._httpd, self._thread, None, None
        if httpd is None or thread is None:
            return
        # shutdown() waits for serve_forever's next poll (up to half a second): off the loop.
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, httpd.shutdown)
        httpd.server_close()
        await loop.run_in_executor(None, thread.join, 5.0)
