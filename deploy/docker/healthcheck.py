"""Health check of the execgw container (Dockerfile HEALTHCHECK, compose `healthcheck:`).

Asks the gateway's standard gRPC health service (grpc.health.v1) whether a service is SERVING:
exit 0 if it is, 1 otherwise, with one line on stderr saying why. Plain Python and the grpcio
the image already has, so nothing is downloaded to build or run it.

What it asks by default is the gateway itself (service ""), not IB: the gateway reconnects to
IB on its own, and restarting the container would not bring IB back. Ask `--service
execgw.ib.paper` to watch IB's side.

Where: the gateway in the same container, 127.0.0.1 and the port of EXECGW_LISTEN (`--target`
when the port is set elsewhere, e.g. in a TOML file). TLS when the gateway serves TLS
(EXECGW_TLS_CERT_FILE set): the certificate is checked against EXECGW_TLS_CA when set, else
against the gateway's own certificate file (right for a self-signed one, or a chain that ends at
its root), for the name `--tls-name` (the name in the certificate; default: the target's host).
A gateway that requires client certificates (EXECGW_TLS_CLIENT_CA_FILE) gets the one named by
EXECGW_TLS_CLIENT_CERT / EXECGW_TLS_CLIENT_KEY, as `execgw` clients do.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

DEFAULT_LISTEN = "127.0.0.1:50051"  # the gateway's own default (server/config.py)
WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "[::]": "::1", "": "127.0.0.1"}


def default_target(listen: str) -> str:
    """The address to reach a gateway that listens on `listen` from inside its own container."""
    host, _, port = listen.rpartition(":")
    host = WILDCARDS.get(host, host)
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def channel_for(target: str, tls_name: str | None) -> grpc.Channel:
    certificate = os.environ.get("EXECGW_TLS_CERT_FILE")
    if not certificate:
        return grpc.insecure_channel(target)
    ca = os.environ.get("EXECGW_TLS_CA") or certificate
    client_cert, client_key = os.environ.get("EXECGW_TLS_CLIENT_CERT"), os.environ.get("EXECGW_TLS_CLIENT_KEY")
    credentials = grpc.ssl_channel_credentials(
        root_certificates=Path(ca).read_bytes(),
        private_key=Path(client_key).read_bytes() if client_key else None,
        certificate_chain=Path(client_cert).read_bytes() if client_cert else None,
    )
    options = [("grpc.ssl_target_name_override", tls_name)] if tls_name else []
    return grpc.secure_channel(target, credentials, options=options)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default=None, help="host:port (default: from EXECGW_LISTEN)")
    parser.add_argument("--service", default="", help='health service name (default "": the gateway)')
    parser.add_argument("--tls-name", default=None, help="name the gateway's certificate carries")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds (default 3)")
    args = parser.parse_args(argv)
    target = args.target or default_target(os.environ.get("EXECGW_LISTEN") or DEFAULT_LISTEN)
    shown = f"{args.service!r} at {target}"
    try:
        with channel_for(target, args.tls_name) as channel:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout
            )
    except OSError as exc:  # a TLS file that cannot be read
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    except grpc.RpcError as exc:
        print(f"unhealthy: {shown}: {exc.code().name} {exc.details() or ''}".rstrip(), file=sys.stderr)
        return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
    if answer.status != health_pb2.HealthCheckResponse.SERVING:
        print(f"unhealthy: {shown} is {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
