"""Database rows and stored events → the execgw.v1 messages clients see."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp

from execgw.server.api import event_proto
from execgw.server.db.models import TradeFill, TradeOrder, TradeRun
from execgw.server.engine.stored_event import StoredEvent
from execgw.v1 import execution_pb2 as pb

MODE_TO_PROTO = {"paper": pb.TRADING_MODE_PAPER, "live": pb.TRADING_MODE_LIVE}
MODE_FROM_PROTO = {value: key for key, value in MODE_TO_PROTO.items()}
SIDE_FROM_PROTO = {pb.ORDER_SIDE_BUY: "BUY", pb.ORDER_SIDE_SELL: "SELL"}
SIDE_TO_PROTO = {value: key for key, value in SIDE_FROM_PROTO.items()}

def timestamp(moment: datetime | None) -> Timestamp | None:
    """Columns hold naive UTC; unset stays unset."""
    if moment is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
    return stamp


def fill_to_proto(fill: TradeFill) -> pb.Fill:
    message = pb.Fill(
        exec_id=fill.exec_id,
        quantity=fill.filled_qty,
        price=fill.price,
        commission_currency=fill.commission_currency or "",
        trade_time=timestamp(fill.trade_time),
        currency=fill.currency or "",
        exchange=fill.exchange or "",
        account=fill.account or "",
        superseded_by=fill.superseded_by or "",
    )
    if fill.commission is not None:
        message.commission = fill.commission
    if fill.realized_pnl is not None:
        message.realized_pnl = fill.realized_pnl
    return message


def order_to_proto(order: TradeOrder, *, with_fills: bool) -> pb.Order:
    message = pb.Order(
        spec=pb.OrderSpec(
            client_order_id=order.client_order_id,
            symbol=order.symbol,
            sec_type=order.sec_type,
            exchange=order.exchange,
            primary_exchange=order.primary_exchange or "",
            currency=order.currency,
            side=SIDE_TO_PROTO.get(order.side, pb.ORDER_SIDE_UNSPECIFIED),
            quantity=order.quantity,
            order_type=order.order_type,
        ),
        status=pb.OrderStatus.Value(f"ORDER_STATUS_{order.status}"),
        filled_quantity=order.filled_qty,
        ib_order_id=order.ib_order_id or 0,
        ib_perm_id=order.ib_perm_id or 0,
        status_reason=order.status_reason or "",
        last_status_time=timestamp(order.last_status_ts),
        account=order.account or "",
    )
    if order.avg_fill_price is not None:
        message.avg_fill_price = order.avg_fill_price
    if with_fills:
        message.fills.extend(fill_to_proto(f) for f in sorted(order.fills, key=lambda f: f.id))
    return message


def run_to_proto(run: TradeRun, *, with_fills: bool) -> pb.Run:
    return pb.Run(
        run_id=run.id,
        mode=MODE_TO_PROTO.get(run.mode, pb.TRADING_MODE_UNSPECIFIED),
        account=run.account or "",
        status=pb.RunStatus.Value(f"RUN_STATUS_{run.status}"),
        status_reason=run.status_reason or "",
        submitted_by=run.submitted_by or "",
        created_at=timestamp(run.created_at),
        updated_at=timestamp(run.updated_at),
        deadline_at=timestamp(run.deadline_at),
        finished_at=timestamp(run.finished_at),
        orders=[order_to_proto(o, with_fills=with_fills) for o in sorted(run.orders, key=lambda o: o.id)],
        last_sequence=run.last_sequence,
        submitted_note=run.submitted_note or "",
        submitted_from=run.submitted_from or "",
        cancelled_by=run.cancelled_by or "",
        cancelled_at=timestamp(run.cancelled_at),
        gateway=run.gateway or "",
    )


def event_to_proto(event: StoredEvent) -> pb.RunEvent:
    """The event's message; the payload is built directly when plain (event_proto), else by
    ParseDict as it always was (same message, same errors)."""
    message = pb.RunEvent(
        run_id=event.run_id,
        sequence=event.sequence,
        reported_at=None if event.ib_time is None else event_proto.timestamp(event.ib_time),
        stored_at=None if event.stored_at is None else event_proto.timestamp(event.stored_at),
    )
    built = event_proto.payload_message(event.kind, event.payload)
    if built is None:
        field, message_type = event_proto.FIELDS[event.kind]
        getattr(message, field).CopyFrom(json_format.ParseDict(event.payload, message_type()))
    else:
        field, payload = built
        getattr(message, field).CopyFrom(payload)
    return message
