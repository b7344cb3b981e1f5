"""What the last reconciliations with IB asked and found, for the operator's status.

A reconciliation that fails leaves the state unknown and is retried; the operator asking "did the
gateway catch up with IB after the restart?" needs to see that, and what the last one recovered
(executions IB returned, those that were new to our books, UNKNOWN orders it settled). Counters
in the metrics say how often; this says what happened the last time, per endpoint and scope.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

FULL = "full"
RUN_END = "run_end"


@dataclass
class ReconciliationRecord:
    """One reconciliation: filled in as IB answers, final once `finished_at` is set."""

    mode: str
    scope: str  # FULL or RUN_END
    started_at: datetime
    finished_at: datetime | None = None
    succeeded: bool = False
    failure: str = ""
    executions_found: int = 0  # returned by IB for its reqExecutions, repeats included
    executions_stored: int = 0  # of those, new to our books
    orders_settled: int = 0
    request_ids: set[tuple[str, int]] = field(default_factory=set)  # (endpoint, reqExecutions id)


class ReconciliationLog:
    """The last finished reconciliation per (mode, scope), and the ones under way. Used on the
    loop only: the reconciler starts and ends records, the report intake counts executions after
    their transaction committed (so "stored" means in the database)."""

    def __init__(self) -> None:
        self.last: dict[tuple[str, str], ReconciliationRecord] = {}
        self._under_way: dict[tuple[str, int], ReconciliationRecord] = {}

    def begin(self, mode: str, scope: str) -> ReconciliationRecord:
        return ReconciliationRecord(mode, scope, datetime.now(UTC))

    def expect_executions(self, record: ReconciliationRecord, endpoint: str, req_id: int) -> None:
        """Executions IB sends with this request id count toward `record`."""
        key = (endpoint, req_id)
        record.request_ids.add(key)
        self._under_way[key] = record

    def executions_committed(self, answered: Iterable[tuple[str, int, bool]]) -> None:
        """(endpoint, request id, stored anew) of each execution a committed transaction applied;
        executions that came live (request id -1) or for another request are not counted."""
        for endpoint, req_id, stored in answered:
            record = self._under_way.get((endpoint, req_id))
            if record is not None:
                record.executions_found += 1
                record.executions_stored += stored

    def end(self, record: ReconciliationRecord, *, failure: str = "", orders_settled: int = 0) -> None:
        for key in record.request_ids:
            self._under_way.pop(key, None)
        record.finished_at = datetime.now(UTC)
        record.succeeded = not failure
        record.failure = failure
        record.orders_settled = orders_settled
        self.last[(record.mode, record.scope)] = record
