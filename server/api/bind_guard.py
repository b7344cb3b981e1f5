"""The bind guard: the gateway places real orders, so a port other machines can reach must be
encrypted (TLS) and must know its callers (credentials), or the operator must say in so many
words that it need not be (`insecure_allow_remote`), and is then reminded at every start.

Loopback (127.0.0.0/8, ::1, `localhost`) is exempt: only this machine reaches it, and that is
the embedded default. Any other name may resolve to anything, so it counts as remote.
"""

from __future__ import annotations

import ipaddress
import logging

from execgw.server.api.tls import tls_files_of
from execgw.server.config import Settings, split_host_port

log = logging.getLogger(__name__)


class RemoteBindRefused(RuntimeError):
    """A non-loopback address without TLS and credentials, and no `insecure_allow_remote`."""


def is_loopback(host: str) -> bool:
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is loopback too
    return address.is_loopback


def credentials_configured(settings: Settings) -> bool:
    """Whether callers must prove who they are (a callers file is configured)."""
    return bool(settings.callers_file)


def check_bind(settings: Settings) -> None:
    """Returns when `settings.listen` may be bound; raises RemoteBindRefused otherwise.
    Warns when it is exposed only because `insecure_allow_remote` says so."""
    host, port = split_host_port(settings.listen)
    if is_loopback(host):
        return
    missing = []
    if tls_files_of(settings) is None:
        missing.append("TLS (--tls-cert and --tls-key)")
    if not credentials_configured(settings):
        missing.append("caller credentials (callers_file)")
    if not missing:
        return
    lacking = " and ".join(missing)
    if settings.insecure_allow_remote:
        log.warning("INSECURE: %s is reachable from other machines without %s (insecure_allow_remote is "
                    "set): %s", settings.listen, lacking, _what_that_means(settings))
        return
    raise RemoteBindRefused(
        f"refusing to listen on {settings.listen}: it is not a loopback address and the gateway has no "
        f"{lacking}, so anyone who can reach the port could place orders. Configure them, listen on "
        f"127.0.0.1, or pass --insecure-allow-remote (EXECGW_INSECURE_ALLOW_REMOTE=true) to accept the risk"
    )


def _what_that_means(settings: Settings) -> str:
    """The consequence, as it is: without callers the auth interceptor (auth.py) has no one to let
    in off loopback, so the gateway places no order at all; with callers but no TLS it trades, and
    the tokens cross the network readable."""
    if not credentials_configured(settings):
        return ("with no callers file no caller can call it: every call but health and reflection is refused "
                "UNAUTHENTICATED, from this machine too, and no order can be placed. Add callers (execgw caller "
                "add), set callers_file and restart to serve them")
    return ("tokens, orders and runs cross the network in plaintext: anyone who can read the traffic can take "
            "a caller's token and place orders as that caller")
