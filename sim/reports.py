"""Answers to the read requests: open orders, completed orders, executions, positions, accounts.

Each function writes its whole answer, end marker included, to one session: these are the
requests a client makes at connect and after a reconnect to learn what happened meanwhile.
"""

from __future__ import annotations

from collections import defaultdict

from execgw.sim import messages
from execgw.sim.engine import Engine, Session
from execgw.sim.records import Contract, Order
from execgw.sim.requests import ExecutionFilter


def open_orders(engine: Engine, session: Session, every_client: bool) -> None:
    """REQ_OPEN_ORDERS (this client's working orders) or REQ_ALL_OPEN_ORDERS (everyone's)."""
    for order in engine.orders:
        if order.is_final or order.status == "PendingSubmit":
            continue
        if every_client or order.client_id == session.client_id:
            resend_order(session, order)
    session.send(messages.open_order_end())


def resend_order(session: Session, order: Order) -> None:
    session.send(messages.open_order(order))
    session.send(messages.order_status(order))


def completed_orders(engine: Engine, session: Session, api_only: bool = False) -> None:
    """REQ_COMPLETED_ORDERS: the orders that reached a final status in IB's current day, every API
    client's; with ``api_only`` false also those TWS users placed."""
    for order in engine.orders:
        if not order.is_final or order.completed_day != engine.day:
            continue
        if api_only and order.placed_in_tws:
            continue
        session.send(messages.completed_order(order, order.placed_at))
    session.send(messages.completed_orders_end())


def executions(engine: Engine, session: Session, req_id: int, wanted: ExecutionFilter) -> int:
    """REQ_EXECUTIONS: IB's current day's executions matching the filter, each followed by its
    commission report (unless that report is not due yet), then the end marker. Returns how many
    were sent. (IB Gateway answers for the current day only; TWS can be set to 7 days, not modelled.)

    A client sees its own executions; the scenario's master client id sees everyone's.
    """
    master = engine.scenario.master_client_id
    sent = 0
    for execution in engine.executions:
        if execution.day != engine.day or session.client_id not in (execution.client_id, master):
            continue
        if not wanted.matches(execution):
            continue
        session.send(messages.execution_data(req_id, execution, engine.times))
        if execution.exec_id not in engine.commission_pending:
            session.send(messages.commission_report(execution))
        sent += 1
    session.send(messages.execution_data_end(req_id))
    return sent


def positions(engine: Engine, session: Session) -> None:
    """REQ_POSITIONS: net position per account and contract from the day's executions."""
    replaced = {e.corrects for e in engine.executions if e.corrects}
    quantity: dict[tuple[str, Contract], float] = defaultdict(float)
    cost: dict[tuple[str, Contract], float] = defaultdict(float)
    for e in engine.executions:
        if e.exec_id in replaced:
            continue
        signed = e.shares if e.side == "BOT" else -e.shares
        quantity[(e.account, e.contract)] += signed
        cost[(e.account, e.contract)] += signed * e.price
    for (account, contract), held in quantity.items():
        average = cost[(account, contract)] / held if held else 0.0
        session.send(messages.position(account, contract, held, round(average, 6)))
    session.send(messages.position_end())


def account_updates(engine: Engine, session: Session, account: str) -> None:
    """REQ_ACCOUNT_UPDATES: a few values and the download end marker ib_async waits for."""
    now = engine.clock()
    for key, value in (("AccountCode", account), ("NetLiquidation", "1000000.00"),
                       ("AvailableFunds", "1000000.00"), ("BuyingPower", "4000000.00")):
        session.send(messages.account_value(key, value, "" if key == "AccountCode" else "USD", account))
    session.send(messages.account_update_time(now))
    session.send(messages.account_download_end(account))
