"""Python client and command line of the execution gateway.

    from execgw.client import ExecGwClient, Order

    with ExecGwClient("127.0.0.1:50051") as gw:
        result = gw.submit([Order.new("BUY", "AAPL", 100)])
        for event in gw.watch(result.run_id):
            ...
"""

from execgw.client.client import DEFAULT_TARGET, ExecGwClient, RetryPolicy, SubmitResult
from execgw.client.errors import (
    Conflict,
    ExecGwError,
    InvalidRequest,
    NotFound,
    PreconditionFailed,
    Unavailable,
)
from execgw.client.orders import Order, OrderFormatError, new_client_order_id
from execgw.client.tls import ClientTls, TlsFileError

__all__ = [
    "DEFAULT_TARGET",
    "ClientTls",
    "Conflict",
    "ExecGwClient",
    "ExecGwError",
    "InvalidRequest",
    "NotFound",
    "Order",
    "OrderFormatError",
    "PreconditionFailed",
    "RetryPolicy",
    "SubmitResult",
    "TlsFileError",
    "Unavailable",
    "new_client_order_id",
]
