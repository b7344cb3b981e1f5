"""The order and run state machine: what IB's status words mean for an order, and what a run's
orders mean for the run. Filled quantity always comes from executions."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from execgw.server.db.models import OrderStatus as S
from execgw.server.db.models import RunStatus as R
from execgw.server.engine.state import OrderOutcome, run_status, status_from_ib


@pytest.mark.parametrize(
    ("current", "ib_status", "filled", "expected"),
    [
        (S.PENDING_SUBMIT, "PreSubmitted", 0, S.SUBMITTED),
        (S.PENDING_SUBMIT, "Submitted", 0, S.SUBMITTED),
        (S.SUBMITTED, "Submitted", 4, S.PARTIALLY_FILLED),
        # IB says Filled before the execution reached us: executions decide.
        (S.SUBMITTED, "Filled", 0, S.SUBMITTED),
        (S.PARTIALLY_FILLED, "Filled", 10, S.FILLED),
        # A repeated or late working status never takes a done order back.
        (S.FILLED, "Submitted", 10, S.FILLED),
        (S.REJECTED, "Submitted", 0, S.REJECTED),
        (S.CANCELLED, "Submitted", 0, S.CANCELLED),
        (S.SUBMITTED, "Cancelled", 0, S.CANCELLED),
        (S.SUBMITTED, "ApiCancelled", 0, S.CANCELLED),
        (S.SUBMITTED, "PendingCancel", 0, S.SUBMITTED),
        (S.PARTIALLY_FILLED, "Cancelled", 3, S.CANCELLED),
        # A cancel that lost the race against the fill: the fill wins.
        (S.SUBMITTED, "Cancelled", 10, S.FILLED),
        (S.SUBMITTED, "Inactive", 0, S.INACTIVE),
        (S.INACTIVE, "Submitted", 0, S.SUBMITTED),
        (S.UNKNOWN, "Submitted", 0, S.SUBMITTED),
        (S.SUBMITTED, "SomethingNew", 0, S.SUBMITTED),
    ],
)
def test_status_from_ib(current, ib_status, filled, expected):
    assert status_from_ib(current, ib_status, filled, 10, rejected=False) == expected


def test_inactive_after_a_rejection_stays_rejected():
    assert status_from_ib(S.REJECTED, "Inactive", 0, 10, rejected=True) == S.REJECTED


def outcome(name, status, filled, quantity=10, reason=None):
    return OrderOutcome(name, status, quantity, filled, reason)


def test_every_order_filled_is_success():
    assert run_status([outcome("a", S.FILLED, 10), outcome("b", S.FILLED, 10)], False)[0] == R.SUCCESS


def test_something_filled_is_partial_and_the_reason_names_what_did_not_fill():
    status, reason = run_status(
        [outcome("a", S.FILLED, 10), outcome("b", S.REJECTED, 0, reason="IB 201: no permissions")], False
    )
    assert status == R.PARTIAL
    assert reason == "b REJECTED (filled 0/10): IB 201: no permissions"


def test_a_partially_filled_order_makes_a_partial_run():
    assert run_status([outcome("a", S.CANCELLED, 4)], False)[0] == R.PARTIAL


def test_nothing_filled_is_failed_or_cancelled_when_the_caller_cancelled():
    orders = [outcome("a", S.CANCELLED, 0), outcome("b", S.REJECTED, 0)]
    assert run_status(orders, False)[0] == R.FAILED
    assert run_status(orders, True)[0] == R.CANCELLED
    # Something filled before the caller's cancel: that is a partial run, not a cancelled one.
    assert run_status([outcome("a", S.CANCELLED, 2)], True)[0] == R.PARTIAL


def test_an_order_is_filled_only_when_its_executions_reach_its_quantity_exactly():
    """No float tolerance: an order of 1e-9 shares with nothing executed is not filled."""
    from execgw.server.engine.state import is_filled, working_status

    assert not is_filled(0.0, 1e-9)
    assert not is_filled(0.0, 5e-324)
    assert not is_filled(99.99999999, 100)
    assert is_filled(100.0, 100)
    assert working_status(0.0, 1e-9) == S.SUBMITTED
    assert run_status([OrderOutcome("tiny", S.SUBMITTED, 1e-9, 0.0, None)], False)[0] == R.FAILED


@given(st.one_of(st.floats(allow_nan=False), st.integers(-(2**60), 2**60)),
       st.one_of(st.floats(allow_nan=False), st.integers(-(2**60), 2**60)))
@settings(max_examples=2000, deadline=None)
def test_the_whole_share_shortcut_decides_as_the_exact_decimals_do(filled, ordered):
    """is_filled compares whole numbers as doubles, skipping the decimals; working_status
    tests the sign of the double. Both must decide exactly as the decimals of the quantities
    as written would, for every value, huge, tiny, negative or infinite."""
    from decimal import Decimal

    from execgw.server.engine.state import as_shares, is_filled, working_status

    def exact(value: float) -> Decimal:
        return Decimal(repr(float(value)))

    assert is_filled(filled, ordered) == (exact(filled) >= exact(ordered))
    assert as_shares(filled) == exact(filled) and as_shares(filled) == as_shares(filled)
    expected = S.FILLED if exact(filled) >= exact(ordered) else S.PARTIALLY_FILLED if exact(filled) > 0 else S.SUBMITTED
    assert working_status(filled, ordered) == expected
