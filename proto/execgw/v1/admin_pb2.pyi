import datetime

from execgw.v1 import execution_pb2 as _execution_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetStatusResponse(_message.Message):
    __slots__ = ("gateway_name", "version", "started_at", "uptime", "endpoints", "database", "open_runs", "unknown_orders", "lists_unavailable")
    GATEWAY_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    UPTIME_FIELD_NUMBER: _ClassVar[int]
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    DATABASE_FIELD_NUMBER: _ClassVar[int]
    OPEN_RUNS_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_ORDERS_FIELD_NUMBER: _ClassVar[int]
    LISTS_UNAVAILABLE_FIELD_NUMBER: _ClassVar[int]
    gateway_name: str
    version: str
    started_at: _timestamp_pb2.Timestamp
    uptime: _duration_pb2.Duration
    endpoints: _containers.RepeatedCompositeFieldContainer[EndpointStatus]
    database: DatabaseStatus
    open_runs: _containers.RepeatedCompositeFieldContainer[OpenRunSummary]
    unknown_orders: _containers.RepeatedCompositeFieldContainer[UnknownOrder]
    lists_unavailable: str
    def __init__(self, gateway_name: _Optional[str] = ..., version: _Optional[str] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., uptime: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., endpoints: _Optional[_Iterable[_Union[EndpointStatus, _Mapping]]] = ..., database: _Optional[_Union[DatabaseStatus, _Mapping]] = ..., open_runs: _Optional[_Iterable[_Union[OpenRunSummary, _Mapping]]] = ..., unknown_orders: _Optional[_Iterable[_Union[UnknownOrder, _Mapping]]] = ..., lists_unavailable: _Optional[str] = ...) -> None: ...

class EndpointStatus(_message.Message):
    __slots__ = ("mode", "address", "client_id", "connected", "taking_orders", "not_taking_orders_reason", "accounts", "next_order_id", "last_full_reconciliation", "last_run_end_reconciliation", "pacing", "connections_made")
    MODE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_FIELD_NUMBER: _ClassVar[int]
    TAKING_ORDERS_FIELD_NUMBER: _ClassVar[int]
    NOT_TAKING_ORDERS_REASON_FIELD_NUMBER: _ClassVar[int]
    ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_FULL_RECONCILIATION_FIELD_NUMBER: _ClassVar[int]
    LAST_RUN_END_RECONCILIATION_FIELD_NUMBER: _ClassVar[int]
    PACING_FIELD_NUMBER: _ClassVar[int]
    CONNECTIONS_MADE_FIELD_NUMBER: _ClassVar[int]
    mode: _execution_pb2.TradingMode
    address: str
    client_id: int
    connected: bool
    taking_orders: bool
    not_taking_orders_reason: str
    accounts: _containers.RepeatedScalarFieldContainer[str]
    next_order_id: int
    last_full_reconciliation: ReconciliationRecord
    last_run_end_reconciliation: ReconciliationRecord
    pacing: PacingStatus
    connections_made: int
    def __init__(self, mode: _Optional[_Union[_execution_pb2.TradingMode, str]] = ..., address: _Optional[str] = ..., client_id: _Optional[int] = ..., connected: _Optional[bool] = ..., taking_orders: _Optional[bool] = ..., not_taking_orders_reason: _Optional[str] = ..., accounts: _Optional[_Iterable[str]] = ..., next_order_id: _Optional[int] = ..., last_full_reconciliation: _Optional[_Union[ReconciliationRecord, _Mapping]] = ..., last_run_end_reconciliation: _Optional[_Union[ReconciliationRecord, _Mapping]] = ..., pacing: _Optional[_Union[PacingStatus, _Mapping]] = ..., connections_made: _Optional[int] = ...) -> None: ...

class ReconciliationRecord(_message.Message):
    __slots__ = ("started_at", "finished_at", "succeeded", "failure", "executions_found", "executions_stored", "orders_settled")
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    EXECUTIONS_FOUND_FIELD_NUMBER: _ClassVar[int]
    EXECUTIONS_STORED_FIELD_NUMBER: _ClassVar[int]
    ORDERS_SETTLED_FIELD_NUMBER: _ClassVar[int]
    started_at: _timestamp_pb2.Timestamp
    finished_at: _timestamp_pb2.Timestamp
    succeeded: bool
    failure: str
    executions_found: int
    executions_stored: int
    orders_settled: int
    def __init__(self, started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., succeeded: _Optional[bool] = ..., failure: _Optional[str] = ..., executions_found: _Optional[int] = ..., executions_stored: _Optional[int] = ..., orders_settled: _Optional[int] = ...) -> None: ...

class PacingStatus(_message.Message):
    __slots__ = ("messages_per_second", "turns", "waited_seconds", "orders_waiting")
    MESSAGES_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    TURNS_FIELD_NUMBER: _ClassVar[int]
    WAITED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ORDERS_WAITING_FIELD_NUMBER: _ClassVar[int]
    messages_per_second: int
    turns: int
    waited_seconds: float
    orders_waiting: int
    def __init__(self, messages_per_second: _Optional[int] = ..., turns: _Optional[int] = ..., waited_seconds: _Optional[float] = ..., orders_waiting: _Optional[int] = ...) -> None: ...

class DatabaseStatus(_message.Message):
    __slots__ = ("url", "taking_writes", "writer_backlog", "reports_held", "reports_dropped", "recovering", "accepting_runs")
    URL_FIELD_NUMBER: _ClassVar[int]
    TAKING_WRITES_FIELD_NUMBER: _ClassVar[int]
    WRITER_BACKLOG_FIELD_NUMBER: _ClassVar[int]
    REPORTS_HELD_FIELD_NUMBER: _ClassVar[int]
    REPORTS_DROPPED_FIELD_NUMBER: _ClassVar[int]
    RECOVERING_FIELD_NUMBER: _ClassVar[int]
    ACCEPTING_RUNS_FIELD_NUMBER: _ClassVar[int]
    url: str
    taking_writes: bool
    writer_backlog: int
    reports_held: int
    reports_dropped: int
    recovering: bool
    accepting_runs: bool
    def __init__(self, url: _Optional[str] = ..., taking_writes: _Optional[bool] = ..., writer_backlog: _Optional[int] = ..., reports_held: _Optional[int] = ..., reports_dropped: _Optional[int] = ..., recovering: _Optional[bool] = ..., accepting_runs: _Optional[bool] = ...) -> None: ...

class OpenRunSummary(_message.Message):
    __slots__ = ("run_id", "mode", "account", "orders", "open_orders", "deadline", "created_at", "submitted_by")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    ORDERS_FIELD_NUMBER: _ClassVar[int]
    OPEN_ORDERS_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_BY_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    mode: _execution_pb2.TradingMode
    account: str
    orders: int
    open_orders: int
    deadline: _timestamp_pb2.Timestamp
    created_at: _timestamp_pb2.Timestamp
    submitted_by: str
    def __init__(self, run_id: _Optional[str] = ..., mode: _Optional[_Union[_execution_pb2.TradingMode, str]] = ..., account: _Optional[str] = ..., orders: _Optional[int] = ..., open_orders: _Optional[int] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., submitted_by: _Optional[str] = ...) -> None: ...

class UnknownOrder(_message.Message):
    __slots__ = ("client_order_id", "run_id", "mode", "ib_order_id", "created_at", "reason", "account", "symbol", "side", "quantity")
    CLIENT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    IB_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    client_order_id: str
    run_id: str
    mode: _execution_pb2.TradingMode
    ib_order_id: int
    created_at: _timestamp_pb2.Timestamp
    reason: str
    account: str
    symbol: str
    side: _execution_pb2.OrderSide
    quantity: float
    def __init__(self, client_order_id: _Optional[str] = ..., run_id: _Optional[str] = ..., mode: _Optional[_Union[_execution_pb2.TradingMode, str]] = ..., ib_order_id: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ..., account: _Optional[str] = ..., symbol: _Optional[str] = ..., side: _Optional[_Union[_execution_pb2.OrderSide, str]] = ..., quantity: _Optional[float] = ...) -> None: ...

class SettleOrderRequest(_message.Message):
    __slots__ = ("client_order_id", "note")
    CLIENT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    client_order_id: str
    note: str
    def __init__(self, client_order_id: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class SettleOrderResponse(_message.Message):
    __slots__ = ("client_order_id", "run_id", "status", "status_reason", "run_ends")
    CLIENT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STATUS_REASON_FIELD_NUMBER: _ClassVar[int]
    RUN_ENDS_FIELD_NUMBER: _ClassVar[int]
    client_order_id: str
    run_id: str
    status: _execution_pb2.OrderStatus
    status_reason: str
    run_ends: bool
    def __init__(self, client_order_id: _Optional[str] = ..., run_id: _Optional[str] = ..., status: _Optional[_Union[_execution_pb2.OrderStatus, str]] = ..., status_reason: _Optional[str] = ..., run_ends: _Optional[bool] = ...) -> None: ...
