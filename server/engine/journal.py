"""One log line per order state change, per execution and commission, and per run status, with
the ids an operator searches by (run_id, client_order_id, ib_order_id, perm_id, exec_id).

Written from the committed events (an observer of the event bus), so a line means the change is
in the database, and each change is logged once, whichever path (IB's report, a reconciliation,
a withdrawal) made it.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

from execgw.server.db.models import EventKind
from execgw.server.engine.stored_event import StoredEvent

log = logging.getLogger("execgw.journal")

REMEMBERED_ORDERS = 100_000  # (run, client_order_id) → IB ids, for the fills' lines


class Journal:
    def __init__(self) -> None:
        # Fill events name the order by client_order_id only; its IB ids come from its statuses.
        self._ib_ids: OrderedDict[tuple[str, str], tuple[int, int]] = OrderedDict()

    def __call__(self, events: list[StoredEvent]) -> None:
        if not log.isEnabledFor(logging.INFO):
            return
        for event in events:
            self._log(event)

    def _log(self, event: StoredEvent) -> None:
        payload = event.payload
        fields: dict[str, Any] = {"event": event.kind, "run_id": event.run_id, "sequence": event.sequence}
        if event.kind == EventKind.RUN_STATUS:
            fields |= {"status": _short(payload.get("status", ""), "RUN_STATUS_"), "final": bool(payload.get("final"))}
            log.info("run %s %s: %s", event.run_id, fields["status"], payload.get("reason", ""), extra=fields)
            return
        client_order_id = str(payload.get("client_order_id", ""))
        fields["client_order_id"] = client_order_id
        if event.kind == EventKind.ORDER_STATUS:
            ib_ids = int(payload.get("ib_order_id") or 0), int(payload.get("ib_perm_id") or 0)
            self._remember(event.run_id, client_order_id, ib_ids)
            fields |= {"ib_order_id": ib_ids[0], "perm_id": ib_ids[1],
                       "status": _short(payload.get("status", ""), "ORDER_STATUS_"),
                       "previous_status": _short(payload.get("previous_status", ""), "ORDER_STATUS_"),
                       "filled_quantity": payload.get("filled_quantity", 0.0)}
            reason = payload.get("reason") or ""
            log.info("order %s %s -> %s%s", client_order_id, fields["previous_status"], fields["status"],
                     f": {reason}" if reason else "", extra=fields)
            return
        ib_order_id, perm_id = self._ib_ids.get((event.run_id, client_order_id), (0, 0))
        fields |= {"ib_order_id": ib_order_id, "perm_id": perm_id}
        if event.kind == EventKind.FILL:
            fill = payload.get("fill", {})
            fields |= {"exec_id": fill.get("exec_id", ""), "quantity": fill.get("quantity"),
                       "price": fill.get("price"), "account": fill.get("account", "")}
            corrects = payload.get("corrects_exec_id") or ""
            if corrects:
                fields["corrects_exec_id"] = corrects
            log.info("execution %s of %s: %s @ %s%s", fields["exec_id"], client_order_id, fields["quantity"],
                     fields["price"], f" (corrects {corrects})" if corrects else "", extra=fields)
        elif event.kind == EventKind.COMMISSION:
            fields |= {"exec_id": payload.get("exec_id", ""), "commission": payload.get("commission"),
                       "commission_currency": payload.get("currency", "")}
            log.info("commission %s %s on execution %s of %s", fields["commission"], fields["commission_currency"],
                     fields["exec_id"], client_order_id, extra=fields)

    def _remember(self, run_id: str, client_order_id: str, ib_ids: tuple[int, int]) -> None:
        key = (run_id, client_order_id)
        self._ib_ids[key] = ib_ids
        self._ib_ids.move_to_end(key)
        if len(self._ib_ids) > REMEMBERED_ORDERS:
            self._ib_ids.popitem(last=False)


def _short(status: object, prefix: str) -> str:
    return str(status).removeprefix(prefix)
