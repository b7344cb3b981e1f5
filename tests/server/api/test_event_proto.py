"""An event's message built directly (server/api/event_proto.py) is exactly what
`json_format.ParseDict` made of the same payload, field for field and byte for byte, for every
event kind; a payload ParseDict refuses is refused with ParseDict's own error."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from google.protobuf import json_format
from hypothesis import given, settings
from hypothesis import strategies as st

from execgw.server.api import convert, event_proto
from execgw.server.engine.recorder import fill_row_payload, order_status_payload
from execgw.server.engine.stored_event import StoredEvent
from execgw.v1 import execution_pb2 as pb

STORED = datetime(2026, 11, 28, 10, 0, 0, 123456)


def parse_dict_encoding(event: StoredEvent) -> pb.RunEvent:
    """event_to_proto as it was: ParseDict for the payload, Timestamp.FromDatetime for the times."""
    field, message_type = event_proto.FIELDS[event.kind]
    message = pb.RunEvent(run_id=event.run_id, sequence=event.sequence, reported_at=convert.timestamp(event.ib_time),
                          stored_at=convert.timestamp(event.stored_at))
    getattr(message, field).CopyFrom(json_format.ParseDict(event.payload, message_type()))
    return message


def assert_same(event: StoredEvent) -> None:
    expected = parse_dict_encoding(event)
    got = convert.event_to_proto(event)
    assert got == expected
    assert got.SerializeToString(deterministic=True) == expected.SerializeToString(deterministic=True)
    assert json_format.MessageToDict(got) == json_format.MessageToDict(expected)


def fill_row(**changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "exec_id": "0000e0d5.65000001.01.01", "filled_qty": 100.0, "price": 187.25, "commission": None,
        "commission_currency": None, "realized_pnl": None, "currency": "USD", "exchange": "ISLAND",
        "account": "DU1234567", "superseded_by": None, "trade_time": datetime(2026, 11, 28, 9, 30, 1),
    }
    row.update(changes)
    return row


class Order:
    """The columns order_status_payload reads."""

    def __init__(self, **values: Any) -> None:
        self.client_order_id = "ord-1"
        self.ib_order_id: int | None = 7
        self.ib_perm_id: int | None = 1_000_000_007
        self.status = "PARTIALLY_FILLED"
        self.quantity = 300.0
        self.filled_qty = 100.0
        self.avg_fill_price: float | None = 187.25
        self.__dict__.update(values)


def fill_payload(**row: Any) -> dict[str, Any]:
    return {"client_order_id": "ord-1", "fill": fill_row_payload(fill_row(**row)), "corrects_exec_id": "",
            "order_filled_quantity": 100.0, "order_avg_fill_price": 187.25}


# What the recorder writes, every kind, with the values that vary: absent and None optionals,
# zeros, whole and fractional quantities, int64 limits, times with and without microseconds.
RECORDED: list[tuple[str, dict[str, Any]]] = [
    ("order_status", order_status_payload(Order(), "SUBMITTED", "Submitted")),
    ("order_status", order_status_payload(Order(avg_fill_price=None, ib_order_id=None, ib_perm_id=None,
                                                filled_qty=0.0, status="SUBMITTED"), "PENDING_SUBMIT", "PreSubmitted")),
    ("order_status", order_status_payload(Order(quantity=0.3, filled_qty=0.1, avg_fill_price=0.1 + 0.2,
                                                ib_perm_id=2**63 - 1, ib_order_id=2**31 - 1), "SUBMITTED", "Submitted",
                                          "Error 201: Order rejected – «margin»")),
    ("fill", fill_payload()),
    ("fill", fill_payload(commission=1.0, commission_currency="USD", realized_pnl=-12.5,
                          trade_time=datetime(2026, 11, 28, 9, 30, 1, 999999))),
    ("fill", fill_payload(commission=0.0, realized_pnl=0.0, superseded_by="0000e0d5.65000001.01.02",
                          trade_time=datetime(1969, 12, 31, 23, 59, 59, 1))),
    ("fill", fill_payload(trade_time=None, currency=None, exchange=None, account=None, filled_qty=1e-9,
                          price=1.7976931348623157e308)),
    ("fill", {**fill_payload(), "corrects_exec_id": "0000e0d5.65000001.01.01", "order_avg_fill_price": 0.0}),
    ("commission", {"client_order_id": "ord-1", "exec_id": "e.1", "commission": 1.25, "currency": "USD"}),
    ("commission", {"client_order_id": "ord-1", "exec_id": "e.1", "commission": 0.0, "currency": "",
                    "realized_pnl": -3.5}),
    ("commission", {"client_order_id": "ord-1", "exec_id": "e.1", "commission": 1, "currency": "USD",
                    "realized_pnl": 0}),
    ("run_status", {"status": "RUN_STATUS_SUCCESS", "previous_status": "RUN_STATUS_RUNNING", "reason": "",
                    "final": True}),
    ("run_status", {"status": "RUN_STATUS_RUNNING", "previous_status": "RUN_STATUS_UNSPECIFIED",
                    "reason": "ünïcode ✓", "final": False}),
    ("run_status", {"status": "RUN_STATUS_FAILED"}),
    ("run_status", {}),
]

# Not what the recorder writes, but what ParseDict accepts: these go to ParseDict, same result.
UNUSUAL: list[tuple[str, dict[str, Any]]] = [
    ("order_status", {**order_status_payload(Order(), "SUBMITTED", "Submitted"), "filled_quantity": Decimal("0.1"),
                      "remaining_quantity": Decimal("299.9")}),
    ("fill", {**fill_payload(), "order_filled_quantity": Decimal("100.000000001")}),
    ("fill", {**fill_payload(), "fill": {**fill_payload()["fill"], "quantity": Decimal("1E+2"),
                                         "trade_time": "2026-11-28T09:30:01.5+02:00"}}),
    ("fill", {**fill_payload(), "fill": {**fill_payload()["fill"], "trade_time": "2026-11-28T09:30:01.123Z"}}),
    ("fill", {**fill_payload(), "fill": {**fill_payload()["fill"], "trade_time": "2026-11-28T09:30:01.123456789Z"}}),
    ("fill", {**fill_payload(), "fill": None}),
    ("order_status", {**order_status_payload(Order(), "SUBMITTED", "Submitted"), "avg_fill_price": None,
                      "status": 3, "ib_order_id": 7.0, "ib_perm_id": "1000000007"}),
    ("order_status", {"clientOrderId": "camel", "filledQuantity": 5, "avgFillPrice": True}),
    ("commission", {"client_order_id": "ord-1", "exec_id": "e.1", "commission": "1.5", "currency": "USD",
                    "realized_pnl": "NaN"}),
    ("commission", {"client_order_id": "ord-1", "exec_id": "e.1", "commission": "Infinity", "realized_pnl": None}),
    ("run_status", {"status": 2, "previous_status": None}),
]

# ParseDict refuses these; so does the direct encoding, with ParseDict's error.
REFUSED: list[tuple[str, dict[str, Any]]] = [
    ("commission", {"client_order_id": "ord-1", "commission": math.nan}),
    ("commission", {"client_order_id": "ord-1", "commission": math.inf}),
    ("commission", {"client_order_id": "ord-1", "surprise": 1}),
    ("order_status", {"status": "ORDER_STATUS_NO_SUCH"}),
    ("order_status", {"ib_order_id": 2**63}),
    ("order_status", {"ib_order_id": 1.5}),
    ("fill", {"fill": {"trade_time": "2026-13-28T09:30:01Z"}}),
    ("fill", {"fill": {"trade_time": "2026-11-28 09:30:01Z"}}),
    ("fill", {"fill": {"exec_id": "\ud800"}}),
    ("fill", {"fill": {"quantity": True, "exec_id": 5}}),
    ("run_status", {"final": 1}),
    ("run_status", {"final": "true"}),
]

MOMENTS = [None, STORED, STORED.replace(microsecond=0), STORED.replace(tzinfo=UTC),
           STORED.replace(tzinfo=timezone(timedelta(hours=-5))), datetime(1969, 7, 20, 20, 17, 40, 1),
           datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59, 999999)]


def event(kind: str, payload: dict[str, Any], ib_time: datetime | None = STORED,
          stored_at: datetime = STORED) -> StoredEvent:
    return StoredEvent("run-0123456789abcdef", 42, kind, payload, ib_time, stored_at)


@pytest.mark.parametrize(("kind", "payload"), RECORDED + UNUSUAL)
def test_the_same_message_as_parse_dict(kind: str, payload: dict[str, Any]) -> None:
    assert_same(event(kind, payload))
    # As replayed: the payload read back from the database's JSON column.
    assert_same(event(kind, json.loads(json.dumps(payload, default=str))))


@pytest.mark.parametrize(("kind", "payload"), RECORDED)
def test_what_the_recorder_writes_is_built_directly(kind: str, payload: dict[str, Any]) -> None:
    """The fast path is taken for every recorded shape (else the speed-up silently vanishes)."""
    assert event_proto.payload_message(kind, payload) is not None
    assert event_proto.payload_message(kind, json.loads(json.dumps(payload, default=str))) is not None


@pytest.mark.parametrize("moment", MOMENTS)
def test_times_are_those_of_from_datetime(moment: datetime | None) -> None:
    assert_same(event("run_status", {"final": True}, ib_time=moment, stored_at=moment or STORED))
    if moment is not None and moment.tzinfo is None:
        recorded = moment.isoformat() + "Z"  # as fill_row_payload writes trade_time
        assert_same(event("fill", {"fill": {"trade_time": recorded}}))


@pytest.mark.parametrize(("kind", "payload"), REFUSED)
def test_refused_as_parse_dict_refuses(kind: str, payload: dict[str, Any]) -> None:
    with pytest.raises(json_format.ParseError) as expected:
        parse_dict_encoding(event(kind, payload))
    with pytest.raises(json_format.ParseError) as got:
        convert.event_to_proto(event(kind, payload))
    assert str(got.value) == str(expected.value)


def test_an_unknown_kind_is_an_error() -> None:
    with pytest.raises(KeyError):
        convert.event_to_proto(event("no_such_kind", {}))


_SCALAR_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**64), max_value=2**64), st.floats(allow_nan=True),
    st.text(max_size=5), st.decimals(allow_nan=False, places=3),
    st.sampled_from(["ORDER_STATUS_FILLED", "RUN_STATUS_SUCCESS", "NaN", "1.5", "2026-11-28T09:30:01Z",
                     "2026-11-28T09:30:01.000001Z", "2026-02-30T09:30:01Z"]),
)


def _payloads(message_type: type[Any]) -> st.SearchStrategy[dict[str, Any]]:
    names = [f.name for f in message_type.DESCRIPTOR.fields] + ["unknown_key"]
    values: st.SearchStrategy[Any] = _SCALAR_VALUES
    if message_type is pb.FillReported:
        values = st.one_of(_SCALAR_VALUES, _payloads(pb.Fill))
    return st.dictionaries(st.sampled_from(names), values, max_size=len(names))


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(sorted(event_proto.FIELDS)).flatmap(
    lambda kind: st.tuples(st.just(kind), _payloads(event_proto.FIELDS[kind][1]))))
def test_any_payload_encodes_or_fails_as_parse_dict(case: tuple[str, dict[str, Any]]) -> None:
    kind, payload = case
    try:
        expected = parse_dict_encoding(event(kind, payload))
    except Exception as error:  # ParseError mostly; ParseDict lets OverflowError and the like through
        with pytest.raises(type(error)) as got:
            convert.event_to_proto(event(kind, payload))
        assert str(got.value) == str(error)
        return
    got_message = convert.event_to_proto(event(kind, payload))
    assert got_message.SerializeToString(deterministic=True) == expected.SerializeToString(deterministic=True)
