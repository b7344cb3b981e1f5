import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TradingMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRADING_MODE_UNSPECIFIED: _ClassVar[TradingMode]
    TRADING_MODE_PAPER: _ClassVar[TradingMode]
    TRADING_MODE_LIVE: _ClassVar[TradingMode]

class OrderSide(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ORDER_SIDE_UNSPECIFIED: _ClassVar[OrderSide]
    ORDER_SIDE_BUY: _ClassVar[OrderSide]
    ORDER_SIDE_SELL: _ClassVar[OrderSide]

class OrderStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ORDER_STATUS_UNSPECIFIED: _ClassVar[OrderStatus]
    ORDER_STATUS_PENDING_SUBMIT: _ClassVar[OrderStatus]
    ORDER_STATUS_SUBMITTED: _ClassVar[OrderStatus]
    ORDER_STATUS_PARTIALLY_FILLED: _ClassVar[OrderStatus]
    ORDER_STATUS_FILLED: _ClassVar[OrderStatus]
    ORDER_STATUS_CANCELLED: _ClassVar[OrderStatus]
    ORDER_STATUS_REJECTED: _ClassVar[OrderStatus]
    ORDER_STATUS_INACTIVE: _ClassVar[OrderStatus]
    ORDER_STATUS_UNKNOWN: _ClassVar[OrderStatus]

class RunStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RUN_STATUS_UNSPECIFIED: _ClassVar[RunStatus]
    RUN_STATUS_RUNNING: _ClassVar[RunStatus]
    RUN_STATUS_SUCCESS: _ClassVar[RunStatus]
    RUN_STATUS_PARTIAL: _ClassVar[RunStatus]
    RUN_STATUS_FAILED: _ClassVar[RunStatus]
    RUN_STATUS_CANCELLED: _ClassVar[RunStatus]
TRADING_MODE_UNSPECIFIED: TradingMode
TRADING_MODE_PAPER: TradingMode
TRADING_MODE_LIVE: TradingMode
ORDER_SIDE_UNSPECIFIED: OrderSide
ORDER_SIDE_BUY: OrderSide
ORDER_SIDE_SELL: OrderSide
ORDER_STATUS_UNSPECIFIED: OrderStatus
ORDER_STATUS_PENDING_SUBMIT: OrderStatus
ORDER_STATUS_SUBMITTED: OrderStatus
ORDER_STATUS_PARTIALLY_FILLED: OrderStatus
ORDER_STATUS_FILLED: OrderStatus
ORDER_STATUS_CANCELLED: OrderStatus
ORDER_STATUS_REJECTED: OrderStatus
ORDER_STATUS_INACTIVE: OrderStatus
ORDER_STATUS_UNKNOWN: OrderStatus
RUN_STATUS_UNSPECIFIED: RunStatus
RUN_STATUS_RUNNING: RunStatus
RUN_STATUS_SUCCESS: RunStatus
RUN_STATUS_PARTIAL: RunStatus
RUN_STATUS_FAILED: RunStatus
RUN_STATUS_CANCELLED: RunStatus

class OrderSpec(_message.Message):
    __slots__ = ("client_order_id", "symbol", "sec_type", "exchange", "primary_exchange", "currency", "side", "quantity", "order_type")
    CLIENT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    SEC_TYPE_FIELD_NUMBER: _ClassVar[int]
    EXCHANGE_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_EXCHANGE_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    ORDER_TYPE_FIELD_NUMBER: _ClassVar[int]
    client_order_id: str
    symbol: str
    sec_type: str
    exchange: str
    primary_exchange: str
    currency: str
    side: OrderSide
    quantity: float
    order_type: str
    def __init__(self, client_order_id: _Optional[str] = ..., symbol: _Optional[str] = ..., sec_type: _Optional[str] = ..., exchange: _Optional[str] = ..., primary_exchange: _Optional[str] = ..., currency: _Optional[str] = ..., side: _Optional[_Union[OrderSide, str]] = ..., quantity: _Optional[float] = ..., order_type: _Optional[str] = ...) -> None: ...

class Fill(_message.Message):
    __slots__ = ("exec_id", "quantity", "price", "commission", "commission_currency", "realized_pnl", "trade_time", "currency", "exchange", "account", "superseded_by")
    EXEC_ID_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    COMMISSION_FIELD_NUMBER: _ClassVar[int]
    COMMISSION_CURRENCY_FIELD_NUMBER: _ClassVar[int]
    REALIZED_PNL_FIELD_NUMBER: _ClassVar[int]
    TRADE_TIME_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    EXCHANGE_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    SUPERSEDED_BY_FIELD_NUMBER: _ClassVar[int]
    exec_id: str
    quantity: float
    price: float
    commission: float
    commission_currency: str
    realized_pnl: float
    trade_time: _timestamp_pb2.Timestamp
    currency: str
    exchange: str
    account: str
    superseded_by: str
    def __init__(self, exec_id: _Optional[str] = ..., quantity: _Optional[float] = ..., price: _Optional[float] = ..., commission: _Optional[float] = ..., commission_currency: _Optional[str] = ..., realized_pnl: _Optional[float] = ..., trade_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., currency: _Optional[str] = ..., exchange: _Optional[str] = ..., account: _Optional[str] = ..., superseded_by: _Optional[str] = ...) -> None: ...

class Order(_message.Message):
    __slots__ = ("spec", "status", "filled_quantity", "avg_fill_price", "ib_order_id", "ib_perm_id", "status_reason", "last_status_time", "fills", "account")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    FILLED_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    AVG_FILL_PRICE_FIELD_NUMBER: _ClassVar[int]
    IB_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    IB_PERM_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_REASON_FIELD_NUMBER: _ClassVar[int]
    LAST_STATUS_TIME_FIELD_NUMBER: _ClassVar[int]
    FILLS_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    spec: OrderSpec
    status: OrderStatus
    filled_quantity: float
    avg_fill_price: float
    ib_order_id: int
    ib_perm_id: int
    status_reason: str
    last_status_time: _timestamp_pb2.Timestamp
    fills: _containers.RepeatedCompositeFieldContainer[Fill]
    account: str
    def __init__(self, spec: _Optional[_Union[OrderSpec, _Mapping]] = ..., status: _Optional[_Union[OrderStatus, str]] = ..., filled_quantity: _Optional[float] = ..., avg_fill_price: _Optional[float] = ..., ib_order_id: _Optional[int] = ..., ib_perm_id: _Optional[int] = ..., status_reason: _Optional[str] = ..., last_status_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., fills: _Optional[_Iterable[_Union[Fill, _Mapping]]] = ..., account: _Optional[str] = ...) -> None: ...

class Run(_message.Message):
    __slots__ = ("run_id", "mode", "account", "status", "status_reason", "submitted_by", "created_at", "updated_at", "deadline_at", "finished_at", "orders", "last_sequence", "submitted_note", "submitted_from", "cancelled_by", "cancelled_at", "gateway")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STATUS_REASON_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_BY_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    ORDERS_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_NOTE_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_FROM_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_BY_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_AT_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    mode: TradingMode
    account: str
    status: RunStatus
    status_reason: str
    submitted_by: str
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    deadline_at: _timestamp_pb2.Timestamp
    finished_at: _timestamp_pb2.Timestamp
    orders: _containers.RepeatedCompositeFieldContainer[Order]
    last_sequence: int
    submitted_note: str
    submitted_from: str
    cancelled_by: str
    cancelled_at: _timestamp_pb2.Timestamp
    gateway: str
    def __init__(self, run_id: _Optional[str] = ..., mode: _Optional[_Union[TradingMode, str]] = ..., account: _Optional[str] = ..., status: _Optional[_Union[RunStatus, str]] = ..., status_reason: _Optional[str] = ..., submitted_by: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., deadline_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., orders: _Optional[_Iterable[_Union[Order, _Mapping]]] = ..., last_sequence: _Optional[int] = ..., submitted_note: _Optional[str] = ..., submitted_from: _Optional[str] = ..., cancelled_by: _Optional[str] = ..., cancelled_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., gateway: _Optional[str] = ...) -> None: ...

class SubmitRunRequest(_message.Message):
    __slots__ = ("mode", "account", "orders", "deadline", "submitted_by", "confirm_live")
    MODE_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    ORDERS_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_BY_FIELD_NUMBER: _ClassVar[int]
    CONFIRM_LIVE_FIELD_NUMBER: _ClassVar[int]
    mode: TradingMode
    account: str
    orders: _containers.RepeatedCompositeFieldContainer[OrderSpec]
    deadline: _duration_pb2.Duration
    submitted_by: str
    confirm_live: str
    def __init__(self, mode: _Optional[_Union[TradingMode, str]] = ..., account: _Optional[str] = ..., orders: _Optional[_Iterable[_Union[OrderSpec, _Mapping]]] = ..., deadline: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., submitted_by: _Optional[str] = ..., confirm_live: _Optional[str] = ...) -> None: ...

class SubmitRunResponse(_message.Message):
    __slots__ = ("run", "existing")
    RUN_FIELD_NUMBER: _ClassVar[int]
    EXISTING_FIELD_NUMBER: _ClassVar[int]
    run: Run
    existing: bool
    def __init__(self, run: _Optional[_Union[Run, _Mapping]] = ..., existing: _Optional[bool] = ...) -> None: ...

class WatchRunRequest(_message.Message):
    __slots__ = ("run_id", "after_sequence", "max_events_per_message")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    MAX_EVENTS_PER_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    after_sequence: int
    max_events_per_message: int
    def __init__(self, run_id: _Optional[str] = ..., after_sequence: _Optional[int] = ..., max_events_per_message: _Optional[int] = ...) -> None: ...

class WatchRunResponse(_message.Message):
    __slots__ = ("event", "heartbeat", "events")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    event: RunEvent
    heartbeat: Heartbeat
    events: RunEvents
    def __init__(self, event: _Optional[_Union[RunEvent, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., events: _Optional[_Union[RunEvents, _Mapping]] = ...) -> None: ...

class RunEvents(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[RunEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[RunEvent, _Mapping]]] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("server_time", "last_sequence")
    SERVER_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    server_time: _timestamp_pb2.Timestamp
    last_sequence: int
    def __init__(self, server_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_sequence: _Optional[int] = ...) -> None: ...

class RunEvent(_message.Message):
    __slots__ = ("run_id", "sequence", "reported_at", "stored_at", "order_status", "fill", "commission", "run_status")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    REPORTED_AT_FIELD_NUMBER: _ClassVar[int]
    STORED_AT_FIELD_NUMBER: _ClassVar[int]
    ORDER_STATUS_FIELD_NUMBER: _ClassVar[int]
    FILL_FIELD_NUMBER: _ClassVar[int]
    COMMISSION_FIELD_NUMBER: _ClassVar[int]
    RUN_STATUS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    sequence: int
    reported_at: _timestamp_pb2.Timestamp
    stored_at: _timestamp_pb2.Timestamp
    order_status: OrderStatusChanged
    fill: FillReported
    commission: CommissionReported
    run_status: RunStatusChanged
    def __init__(self, run_id: _Optional[str] = ..., sequence: _Optional[int] = ..., reported_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., stored_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., order_status: _Optional[_Union[OrderStatusChanged, _Mapping]] = ..., fill: _Optional[_Union[FillReported, _Mapping]] = ..., commission: _Optional[_Union[CommissionReported, _Mapping]] = ..., run_status: _Optional[_Union[RunStatusChanged, _Mapping]] = ...) -> None: ...

class OrderStatusChanged(_message.Message):
    __slots__ = ("client_order_id", "ib_order_id", "status", "previous_status", "filled_quantity", "remaining_quantity", "avg_fill_price", "ib_perm_id", "ib_status", "reason")
    CLIENT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    IB_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_STATUS_FIELD_NUMBER: _ClassVar[int]
    FILLED_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    REMAINING_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    AVG_FILL_PRICE_FIELD_NUMBER: _ClassVar[int]
    IB_PERM_ID_FIELD_NUMBER: _ClassVar[int]
    IB_STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    client_order_id: str
    ib_order_id: int
    status: OrderStatus
    previous_status: OrderStatus
    filled_quantity: float
    remaining_quantity: float
    avg_fill_price: float
    ib_perm_id: int
    ib_status: str
    reason: str
    def __init__(self, client_order_id: _Optional[str] = ..., ib_order_id: _Optional[int] = ..., status: _Optional[_Union[OrderStatus, str]] = ..., previous_status: _Optional[_Union[OrderStatus, str]] = ..., filled_quantity: _Optional[float] = ..., remaining_quantity: _Optional[float] = ..., avg_fill_price: _Optional[float] = ..., ib_perm_id: _Optional[int] = ..., ib_status: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class FillReported(_message.Message):
    __slots__ = ("client_order_id", "fill", "corrects_exec_id", "order_filled_quantity", "order_avg_fill_price")
    CLIENT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    FILL_FIELD_NUMBER: _ClassVar[int]
    CORRECTS_EXEC_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_FILLED_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    ORDER_AVG_FILL_PRICE_FIELD_NUMBER: _ClassVar[int]
    client_order_id: str
    fill: Fill
    corrects_exec_id: str
    order_filled_quantity: float
    order_avg_fill_price: float
    def __init__(self, client_order_id: _Optional[str] = ..., fill: _Optional[_Union[Fill, _Mapping]] = ..., corrects_exec_id: _Optional[str] = ..., order_filled_quantity: _Optional[float] = ..., order_avg_fill_price: _Optional[float] = ...) -> None: ...

class CommissionReported(_message.Message):
    __slots__ = ("client_order_id", "exec_id", "commission", "currency", "realized_pnl")
    CLIENT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    EXEC_ID_FIELD_NUMBER: _ClassVar[int]
    COMMISSION_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    REALIZED_PNL_FIELD_NUMBER: _ClassVar[int]
    client_order_id: str
    exec_id: str
    commission: float
    currency: str
    realized_pnl: float
    def __init__(self, client_order_id: _Optional[str] = ..., exec_id: _Optional[str] = ..., commission: _Optional[float] = ..., currency: _Optional[str] = ..., realized_pnl: _Optional[float] = ...) -> None: ...

class RunStatusChanged(_message.Message):
    __slots__ = ("status", "previous_status", "reason", "final")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    status: RunStatus
    previous_status: RunStatus
    reason: str
    final: bool
    def __init__(self, status: _Optional[_Union[RunStatus, str]] = ..., previous_status: _Optional[_Union[RunStatus, str]] = ..., reason: _Optional[str] = ..., final: _Optional[bool] = ...) -> None: ...

class GetRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class GetRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: Run
    def __init__(self, run: _Optional[_Union[Run, _Mapping]] = ...) -> None: ...

class ListRunsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListRunsResponse(_message.Message):
    __slots__ = ("runs", "next_page_token")
    RUNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[Run]
    next_page_token: str
    def __init__(self, runs: _Optional[_Iterable[_Union[Run, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class OrderCancelOutcome(_message.Message):
    __slots__ = ("client_order_id", "ib_order_id", "status", "ib_code", "message")
    CLIENT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    IB_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    IB_CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    client_order_id: str
    ib_order_id: int
    status: OrderStatus
    ib_code: int
    message: str
    def __init__(self, client_order_id: _Optional[str] = ..., ib_order_id: _Optional[int] = ..., status: _Optional[_Union[OrderStatus, str]] = ..., ib_code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class CancelRunResponse(_message.Message):
    __slots__ = ("run", "outcomes")
    RUN_FIELD_NUMBER: _ClassVar[int]
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    run: Run
    outcomes: _containers.RepeatedCompositeFieldContainer[OrderCancelOutcome]
    def __init__(self, run: _Optional[_Union[Run, _Mapping]] = ..., outcomes: _Optional[_Iterable[_Union[OrderCancelOutcome, _Mapping]]] = ...) -> None: ...
