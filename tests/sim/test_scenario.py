"""Scenario files and their Python form."""

from __future__ import annotations

import json

import pytest

from execgw.sim import ConnectivityLoss, Drop, OrderBehaviour, Outage, Scenario

EXAMPLE = {
    "default": {"commission": "delayed", "commission_delay": 0.5},
    "symbols": {"msft": {"outcome": "reject", "reject_reason": "No permissions"}},
    "orders": {"run-7-*": {"fills": 3, "fill_interval": 0.2}, "exact": {"outcome": "rest"}},
    "prices": {"AAPL": 190.0},
    "accounts": ["DU1", "U2"],
    "first_order_id": 100,
    "drops": [{"after_messages": 12, "client_id": 1}, {"at": 3.5}],
    "outages": [{"at": 5.0, "duration": 2.0, "next_valid_id": 1}],
    "connectivity": [{"at": 3.0, "duration": 1.0, "restored_code": 1101}],
}

TOML_EXAMPLE = """
accounts = ["DU1", "U2"]
first_order_id = 100

[default]
commission = "delayed"
commission_delay = 0.5

[symbols.msft]
outcome = "reject"
reject_reason = "No permissions"

[orders."run-7-*"]
fills = 3
fill_interval = 0.2

[orders.exact]
outcome = "rest"

[prices]
AAPL = 190.0

[[drops]]
after_messages = 12
client_id = 1

[[drops]]
at = 3.5

[[outages]]
at = 5.0
duration = 2.0
next_valid_id = 1

[[connectivity]]
at = 3.0
duration = 1.0
restored_code = 1101
"""


def test_from_dict_builds_every_part():
    scenario = Scenario.from_dict(EXAMPLE)
    assert scenario.default == OrderBehaviour(commission="delayed", commission_delay=0.5)
    assert scenario.accounts == ["DU1", "U2"] and scenario.first_order_id == 100
    assert scenario.drops == [Drop(after_messages=12, client_id=1), Drop(at=3.5)]
    assert scenario.outages == [Outage(at=5.0, duration=2.0, next_valid_id=1)]
    assert scenario.connectivity == [ConnectivityLoss(at=3.0, duration=1.0, restored_code=1101)]
    assert scenario.prices == {"AAPL": 190.0}


def test_order_ref_then_symbol_then_default_each_override_the_default():
    scenario = Scenario.from_dict(EXAMPLE)
    by_ref = scenario.behaviour_for("run-7-0003", "MSFT")
    assert (by_ref.fills, by_ref.outcome, by_ref.commission) == (3, "fill", "delayed")
    assert scenario.behaviour_for("exact", "AAPL").outcome == "rest"
    by_symbol = scenario.behaviour_for("other", "MSFT")
    assert (by_symbol.outcome, by_symbol.commission_delay) == ("reject", 0.5)
    assert scenario.behaviour_for("other", "AAPL") == scenario.default


def test_json_and_toml_files_load_the_same_scenario(tmp_path):
    as_json = tmp_path / "s.json"
    as_json.write_text(json.dumps(EXAMPLE))
    as_toml = tmp_path / "s.toml"
    as_toml.write_text(TOML_EXAMPLE)
    assert Scenario.load(as_json) == Scenario.load(as_toml) == Scenario.from_dict(EXAMPLE)


def test_empty_scenario_fills_everything_at_once():
    assert Scenario.from_dict({}).behaviour_for("x", "AAPL") == OrderBehaviour()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"colour": "red"}, "unknown key(s) colour"),
        ({"default": {"fils": 2}}, "default: unknown key(s) fils"),
        ({"orders": {"x": {"outcome": "explode"}}}, "unknown outcome"),
        ({"default": {"fills": 0}}, "fills must be at least 1"),
        ({"default": {"fill_delay": -1}}, "fill_delay must not be negative"),
        ({"drops": [{"client_id": 1}]}, "exactly one of after_messages and at"),
        ({"connectivity": [{"at": 1, "duration": 1, "restored_code": 1100}]}, "1101 or 1102"),
        ({"default": ["fill"]}, "expected a table/object"),
    ],
)
def test_mistakes_are_reported_with_their_place(data, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Scenario.from_dict(data)


def test_unknown_file_type(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("{}")
    with pytest.raises(ValueError, match=r"\.json or \.toml"):
        Scenario.load(path)


def test_todays_tws_is_the_default():
    scenario = Scenario()
    assert (scenario.profile, scenario.read_only, scenario.handshake) == ("current", False, "answer")
    assert (scenario.execution_time_format, scenario.time_zone) == ("utc", "US/Eastern")
    assert (scenario.first_perm_id, scenario.market_open) == (None, True)


TODAYS_TOML = """
profile = "permissive"
read_only = true
handshake = "silent"
execution_time_format = "zone"
time_zone = "Europe/Zurich"
first_perm_id = 2147484648
market_open = false

[orders."ref-*"]
outcome = "error"
error_code = 203
error_message = "The security is not available or allowed for this account"

[orders."warn-*"]
warning_code = 399
warning_message = "Order Message: ..."
error_status = "Cancelled"
"""


def test_todays_tws_keys_from_toml(tmp_path):
    path = tmp_path / "today.toml"
    path.write_text(TODAYS_TOML)
    scenario = Scenario.load(path)
    assert (scenario.profile, scenario.read_only, scenario.handshake) == ("permissive", True, "silent")
    assert (scenario.execution_time_format, scenario.time_zone) == ("zone", "Europe/Zurich")
    assert (scenario.first_perm_id, scenario.market_open) == (2**31 + 1000, False)
    refused = scenario.behaviour_for("ref-1", "AAPL")
    assert (refused.outcome, refused.error_code, refused.error_status) == ("error", 203, None)
    assert scenario.behaviour_for("warn-1", "AAPL").warning_code == 399


@pytest.mark.parametrize("bad", [
    {"profile": "2019"},
    {"handshake": "slow"},
    {"execution_time_format": "iso"},
    {"time_zone": "Mars/Olympus"},
    {"first_perm_id": 0},
    {"default": {"outcome": "error"}},  # an error outcome needs its code
    {"default": {"outcome": "error", "error_code": 201, "error_status": "Filled"}},
])
def test_todays_tws_keys_are_checked(bad):
    with pytest.raises(ValueError):
        Scenario.from_dict(bad)
