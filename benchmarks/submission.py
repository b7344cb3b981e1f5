"""Section 4, submission: one run of `submission_orders` market orders (max_orders_per_run raised
in the gateway's Settings, through EXECGW_MAX_ORDERS_PER_RUN), timed from SubmitRun until the
gateway stored IB's acknowledgement of the last order (the stored_at of each order's first status
from IB). Floor: the orders over the gateway's pacing (45/s): the fastest IB lets them through.

IB drops a message over 50/s with error 100 and the order never exists; the simulator records
every PLACE_ORDER with the code it was refused with, and the count of 100s must be zero.
"""

from __future__ import annotations

import time

from benchmarks import floors
from benchmarks.figures import Figure, guarded
from benchmarks.plan import Context
from benchmarks.rig import Database, follow_to_final, gateway, stub_for, submit
from benchmarks.simproc import SimProcess
from execgw.server.config import ORDER_BYTES, REQUEST_OVERHEAD_BYTES
from execgw.v1 import execution_pb2 as pb

SECTION = "submission"
PACING_ERROR = 100


def _repeat(ctx: Context, database: Database, acknowledged: Figure, refused: Figure) -> None:
    orders = ctx.sizes.submission_orders
    prefix = f"sub{ctx.tag()}-"
    settings = {"max_orders_per_run": max(orders, 100),
                "max_request_bytes": max(256 * 1024, REQUEST_OVERHEAD_BYTES + ORDER_BYTES * orders)}
    with (database.fresh(ctx.folder) as url, SimProcess({}) as sim,
          gateway(url, sim.port, ctx.folder, **settings) as gw, stub_for(gw.target) as stub):
        started = time.time()
        run_id = submit(stub, [(f"{prefix}{i:05d}", "SUBM", 1) for i in range(orders)], timeout=120)
        events = follow_to_final(stub, run_id, timeout=orders / floors.PACING_PER_SECOND * 3 + 120)
        received = sim.call("received_orders", prefix)
    acks: dict[str, float] = {}
    for event in events:
        status = event.order_status
        if event.HasField("order_status") and status.status != pb.ORDER_STATUS_PENDING_SUBMIT and status.ib_status:
            acks.setdefault(status.client_order_id, event.stored_at.seconds + event.stored_at.nanos / 1e9)
    dropped = sum(1 for _, code in received if code == PACING_ERROR)
    details = {"orders": orders, "place_orders_received": len(received),
               "created_at_ib": sum(1 for _, code in received if code is None), "acknowledged": len(acks)}
    refused.add(dropped, details)
    if len(acks) != orders:
        acknowledged.fail(f"{orders - len(acks)} of {orders} orders never acknowledged by IB")
        return
    acknowledged.add(max(acks.values()) - started, details)


def run(ctx: Context, database: Database) -> None:
    db, orders = database.label, ctx.sizes.submission_orders
    acknowledged = ctx.report.figure(SECTION, f"{orders:,} orders: SubmitRun → last acknowledged by IB", "s",
                                     database=db, floor=floors.key(floors.pacing(orders)))
    refused = ctx.report.figure(SECTION, "error 100 at IB (orders dropped by pacing)", "orders", database=db,
                                note="must be 0")
    for repeat in range(ctx.repeat):
        ctx.say(f"[{db}] submission of {orders:,} orders, repeat {repeat + 1}/{ctx.repeat}")
        guarded([acknowledged, refused], lambda: _repeat(ctx, database, acknowledged, refused))
