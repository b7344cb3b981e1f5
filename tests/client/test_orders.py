"""Reading orders from command-line arguments and files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from execgw.client import Order, OrderFormatError, new_client_order_id
from execgw.client.orders import load_orders_file, parse_order_arg
from execgw.v1 import execution_pb2 as pb


def test_side_symbol_quantity() -> None:
    order = parse_order_arg("BUY:AAPL:10")
    assert (order.side, order.symbol, order.quantity) == ("BUY", "AAPL", 10.0)
    assert (order.sec_type, order.exchange, order.currency) == ("STK", "SMART", "USD")
    assert len(order.client_order_id) == 32  # generated


def test_client_order_id_may_contain_colons() -> None:
    order = parse_order_arg("sell:MSFT:2.5:rebal:2024-06-01:7")
    assert (order.side, order.symbol, order.quantity, order.client_order_id) == (
        "SELL", "MSFT", 2.5, "rebal:2024-06-01:7")


def test_generated_ids_differ_and_take_a_prefix() -> None:
    first, second = new_client_order_id("x-"), new_client_order_id("x-")
    assert first != second and first.startswith("x-") and len(first) == 34


@pytest.mark.parametrize(("text", "message"), [
    ("BUY:AAPL", "expected SIDE:SYMBOL:QUANTITY"),
    ("AAPL", "expected SIDE:SYMBOL:QUANTITY"),
    ("BUY::10", "expected SIDE:SYMBOL:QUANTITY"),
    ("HOLD:AAPL:10", "side must be BUY or SELL, got 'HOLD'"),
    ("BUY:AAPL:ten", "quantity must be a number, got 'ten'"),
    ("BUY:AAPL:inf", "quantity must be finite"),
])
def test_bad_arguments_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(OrderFormatError, match=message) as caught:
        parse_order_arg(text)
    assert repr(text) in str(caught.value)


def test_json_file(tmp_path: Path) -> None:
    path = tmp_path / "orders.json"
    path.write_text(json.dumps([
        {"side": "BUY", "symbol": "AAPL", "quantity": 10, "client_order_id": "a-1"},
        {"side": "ORDER_SIDE_SELL", "symbol": "SAP", "quantity": "3", "exchange": "IBIS", "currency": "EUR",
         "order_type": "MKT"},
    ]))
    first, second = load_orders_file(path)
    assert first == Order("a-1", "AAPL", "BUY", 10.0)
    assert (second.side, second.symbol, second.quantity, second.exchange, second.currency) == (
        "SELL", "SAP", 3.0, "IBIS", "EUR")
    assert second.sec_type == "STK" and second.client_order_id


def test_csv_file_with_bom_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text("\ufeffside,symbol,quantity,client_order_id,primary_exchange\n"
                    "BUY,AAPL,10,a-1,NASDAQ\n\nsell,MSFT,5,,\n", encoding="utf-8")
    first, second = load_orders_file(path)
    assert first == Order("a-1", "AAPL", "BUY", 10.0, primary_exchange="NASDAQ")
    assert (second.side, second.symbol, second.quantity, second.primary_exchange) == ("SELL", "MSFT", 5.0, "")
    assert second.client_order_id


@pytest.mark.parametrize(("name", "content", "message"), [
    ("o.json", "{not json", "not valid JSON"),
    ("o.json", '{"side": "BUY"}', "expected a JSON list of orders"),
    ("o.json", "[]", "no orders"),
    ("o.json", '[{"side": "BUY", "symbol": "AAPL", "quantity": 1, "limit": 5}]', r"order \[0\]: unknown field\(s\) limit"),
    ("o.json", '[{"side": "BUY", "symbol": "AAPL"}]', r"order \[0\]: quantity is required"),
    ("o.json", '[{"side": "BUY", "symbol": "AAPL", "quantity": true}]', "quantity must be a number"),
    ("o.json", '[{"side": "BUY", "symbol": "AAPL", "quantity": 1, "order_type": "LMT"}]', "only market orders"),
    ("o.csv", "symbol,quantity\nAAPL,1\n", "header must include side,symbol,quantity"),
    ("o.csv", "side,symbol,quantity\nBUY,AAPL,1\nBUY,MSFT,x\n", "line 3: quantity must be a number"),
    ("o.txt", "BUY:AAPL:1", "expected a .json or .csv file"),
])
def test_bad_files_say_where(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(OrderFormatError, match=message) as caught:
        load_orders_file(path)
    assert str(path) in str(caught.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(OrderFormatError, match="cannot read"):
        load_orders_file(tmp_path / "nope.csv")


def test_order_to_spec() -> None:
    spec = Order("a-1", "AAPL", "buy", 10).to_spec()
    assert spec == pb.OrderSpec(client_order_id="a-1", symbol="AAPL", side=pb.ORDER_SIDE_BUY, quantity=10,
                                sec_type="STK", exchange="SMART", currency="USD", order_type="MKT")
