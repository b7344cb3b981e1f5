"""`execgw status` and `execgw settle` against a gateway in this process (SQLite), and the
AdminService through reflection, as grpcurl sees it."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from execgw.server.db.engine import make_engine
from execgw.server.db.models import TradeOrder, TradeRun
from execgw.server.embedded import GatewayThread

pytestmark = pytest.mark.timeout(60)


def left_unknown(gateway: GatewayThread, address: str) -> str:
    """An order a previous process left UNKNOWN, from before IB's day began; its client_order_id."""
    engine = make_engine(gateway.settings.database_url)
    client_order_id = f"cli-{uuid.uuid4().hex[:8]}-old"
    yesterday = datetime.now(UTC).replace(tzinfo=None) - timedelta(days=1)
    try:
        with Session(engine) as s, s.begin():
            run = TradeRun(id=str(uuid.uuid4()), mode="paper", status="RUNNING", status_reason="submitted",
                           last_sequence=0, created_at=yesterday, updated_at=yesterday, deadline_at=yesterday)
            s.add(run)
            s.flush()
            s.add(TradeOrder(run_id=run.id, client_order_id=client_order_id, symbol="IBM", sec_type="STK",
                             exchange="SMART", currency="USD", side="BUY", quantity=7, order_type="MKT",
                             status="UNKNOWN", filled_qty=0, ib_endpoint=address, ib_client_id=1, ib_order_id=4242,
                             created_at=yesterday, updated_at=yesterday,
                             status_reason="created before IB's current day began: check it in TWS, then settle it"))
    finally:
        engine.dispose()
    return client_order_id


def order_status(gateway: GatewayThread, client_order_id: str) -> tuple[str, str]:
    engine = make_engine(gateway.settings.database_url)
    try:
        with Session(engine) as s:
            row = s.scalars(select(TradeOrder).where(TradeOrder.client_order_id == client_order_id)).one()
            return row.status, row.status_reason or ""
    finally:
        engine.dispose()


def test_status_prints_the_gateway_and_settle_concludes_an_unknown_order(execgw, gateway: GatewayThread) -> None:
    as_json = execgw("status", "--target", gateway.target, "--json")
    assert as_json.code == 0, as_json.err
    status = json.loads(as_json.out)
    (paper,) = status["endpoints"]
    assert paper["mode"] == "TRADING_MODE_PAPER" and paper["connected"] is True and paper["client_id"] == 1
    assert status["database"]["taking_writes"] is True and status["unknown_orders"] == []
    old = left_unknown(gateway, paper["address"])

    shown = execgw("status", "--target", gateway.target)
    assert shown.code == 0, shown.err
    assert f"gateway execgw {importlib.metadata.version('execgw')}" in shown.out
    assert paper["address"] in shown.out and "DU1234567" in shown.out
    assert old in shown.out and "BUY 7 IBM" in shown.out and "4242" in shown.out
    assert "created before IB's current day began" in shown.out

    unnoted = execgw("settle", old, "--note", " ", "--target", gateway.target)
    assert unnoted.code == 1 and "note: required" in unnoted.err
    assert order_status(gateway, old)[0] == "UNKNOWN"

    settled = execgw("settle", old, "--note", "not in TWS or Account Management", "--target", gateway.target)
    assert settled.code == 0, settled.err
    assert f"{old} (run " in settled.out and "is now CANCELLED" in settled.out and "the run ends now" in settled.out
    status, reason = order_status(gateway, old)
    assert status == "CANCELLED" and "'local'" in reason and "not in TWS or Account Management" in reason
    again = execgw("settle", old, "--note", "twice", "--target", gateway.target)
    assert again.code == 1 and "is CANCELLED, not UNKNOWN" in again.err
    assert json.loads(execgw("status", "--target", gateway.target, "--json").out)["unknown_orders"] == []


def test_grpcurl_lists_and_calls_the_admin_service(gateway: GatewayThread) -> None:
    grpcurl = str(Path(sys.executable).parent / "grpcurl")
    listed = subprocess.run([grpcurl, "-plaintext", gateway.target, "list"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert listed.returncode == 0, listed.stderr
    assert "execgw.v1.AdminService" in listed.stdout.split()
    called = subprocess.run([grpcurl, "-plaintext", gateway.target, "execgw.v1.AdminService/GetStatus"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert called.returncode == 0, called.stderr
    assert json.loads(called.stdout)["gateway_name"] == "execgw"  # grpcurl keeps the proto field names
