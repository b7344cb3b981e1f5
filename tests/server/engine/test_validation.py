from __future__ import annotations

from datetime import timedelta

from execgw.server.engine.validation import OrderRequest, validate_run


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
