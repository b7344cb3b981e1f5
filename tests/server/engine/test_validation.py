from __future__ import annotations

import math
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest

from execgw.server.engine.validation import (
    OrderRequest,
    OrderRules,
    order_quantity,
    validate_run,
    validate_run_id,
)


def raw(**change):
    values = dict(client_order_id="c-1", symbol="aapl", sec_type="", exchange="", primary_exchange="",
                  currency="", side="BUY", quantity=10.0, order_type="")
    values.update(change)
    return OrderRequest(**values)


def validate(orders, **change):
    args = dict(mode="paper", account="", orders=orders, deadline=None, submitted_by="svc",
                max_orders=10, default_deadline=timedelta(seconds=60), max_deadline=timedelta(seconds=600))
    args.update(change)
    return validate_run(**args)


def test_defaults_are_applied_and_codes_normalised():
    request, problems = validate([raw(order_type="mkt", primary_exchange="nasdaq")])
    assert problems == []
    (order,) = request.orders
    assert (order.symbol, order.sec_type, order.exchange, order.currency, order.order_type) == (
        "AAPL", "STK", "SMART", "USD", "MKT")
    assert order.primary_exchange == "NASDAQ"
    assert request.deadline == timedelta(seconds=60)


def test_only_market_orders_are_accepted():
    for order_type in ("LMT", "STP", "MOC", "REL"):
        request, problems = validate([raw(order_type=order_type)])
        assert request is None
        assert [p.field for p in problems] == ["orders[0].order_type"]


def test_an_account_must_look_like_one():
    _, problems = validate([raw()], account="DU123; rm -rf")
    assert [p.field for p in problems] == ["account"]


def test_deadline_bounds():
    assert validate([raw()], deadline=timedelta(seconds=600))[1] == []
    assert [p.field for p in validate([raw()], deadline=timedelta(seconds=601))[1]] == ["deadline"]
    assert [p.field for p in validate([raw()], deadline=timedelta(0))[1]] == ["deadline"]


def quantity_problems(quantity, **rules):
    _, problems = validate([raw(quantity=quantity)], rules=OrderRules(**rules))
    return [p for p in problems if p.field == "orders[0].quantity"]


@pytest.mark.parametrize("quantity", [1.0, 100.0, 2.5, 0.1, 0.0001, 1234.5678, 100_000.0])
def test_quantities_of_whole_shares_or_up_to_4_decimals_are_accepted(quantity):
    request, problems = validate([raw(quantity=quantity)])
    assert problems == []
    assert request.orders[0].quantity == quantity


@pytest.mark.parametrize(
    "quantity",
    [0.0, -1.0, 1e-9, 5e-324, 0.00005, 1 / 3, 0.33333333, 1.00001, 1e300, 100_000.0001,
     math.nan, math.inf, -math.inf],
    ids=repr,
)
def test_quantities_ib_cannot_hold_or_beyond_the_maximum_are_refused_saying_what_is_accepted(quantity):
    (problem,) = quantity_problems(quantity)
    assert "from 0.0001 to 100000 in steps of 0.0001" in problem.description
    assert repr(quantity) in problem.description


def test_the_maximum_order_quantity_is_a_setting():
    assert quantity_problems(500.0, max_quantity=500) == []
    (problem,) = quantity_problems(500.5, max_quantity=500)
    assert "to 500 in steps" in problem.description


def test_the_exact_decimal_of_a_quantity_is_what_the_caller_wrote():
    assert order_quantity(0.1, 10) == Decimal("0.1")
    assert order_quantity(2.675, 10) == Decimal("2.675")
    assert order_quantity(1 / 3, 10) is None


@pytest.mark.parametrize(("field", "value"), [
    ("sec_type", "OPT"), ("sec_type", "FUT"), ("sec_type", "CASH"),
    ("exchange", "ZZZZZZZ"), ("exchange", "CBOE2"),
    ("primary_exchange", "SMART"), ("primary_exchange", "ZZZ"),
    ("currency", "ZZZ"), ("currency", "BTC"),
])
def test_only_stocks_in_configured_currencies_and_exchanges_are_accepted(field, value):
    request, problems = validate([raw(**{field: value})])
    assert request is None
    (problem,) = problems
    assert problem.field == f"orders[0].{field}"
    assert repr(value) in problem.description
    accepted = {"sec_type": "STK", "exchange": "SMART, NYSE, NASDAQ", "primary_exchange": "NYSE, NASDAQ",
                "currency": "USD, CAD, EUR"}[field]
    assert accepted in problem.description


def test_codes_are_compared_in_upper_case_and_the_lists_are_settings():
    request, problems = validate([raw(sec_type="stk", exchange="arca", primary_exchange="nyse", currency="eur")])
    assert problems == []
    assert (request.orders[0].exchange, request.orders[0].currency) == ("ARCA", "EUR")
    rules = OrderRules(currencies=("USD",), exchanges=("SMART", "NYSE"))
    _, problems = validate([raw(exchange="ARCA", currency="EUR")], rules=rules)
    assert [p.field for p in problems] == ["orders[0].exchange", "orders[0].currency"]


def test_a_long_value_is_echoed_shortened():
    _, problems = validate([raw(order_type="X" * 1_000_000), raw(client_order_id="d" * 100_000),
                            raw(client_order_id="d" * 100_000)])
    assert problems and all(len(p.description) < 500 for p in problems)
    assert "(1000000 characters)" in problems[0].description


@pytest.mark.parametrize("run_id", ["", "ABC", "3F2B8C1E-9D4A-4E7B-8A6F-1C2D3E4F5A6B", "3f2b8c1e-9d4a-4e7b-8a6f-1c2d3e4f5a6b ",
                                    " 3f2b8c1e-9d4a-4e7b-8a6f-1c2d3e4f5a6b", "3f2b8c1e-9d4a-4e7b-8a6f-1c2d3e4f5a6b\n",
                                    "3f2b8c1e9d4a4e7b8a6f1c2d3e4f5a6b", "{3f2b8c1e-9d4a-4e7b-8a6f-1c2d3e4f5a6b}",
                                    "urn:uuid:3f2b8c1e-9d4a-4e7b-8a6f-1c2d3e4f5a6b", "r" * 100_000])
def test_a_run_id_other_than_the_canonical_lower_case_uuid_is_refused(run_id):
    (problem,) = validate_run_id(run_id)
    assert problem.field == "run_id"
    assert "lower case with hyphens" in problem.description and len(problem.description) < 300


def test_the_run_id_the_engine_makes_is_accepted():
    assert validate_run_id(str(uuid.uuid4())) == []
