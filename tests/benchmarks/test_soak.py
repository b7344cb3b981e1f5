"""A short run of benchmarks/soak.py: random scenarios, socket drops, IB Gateway restarts,
connectivity losses and the gateway process killed with SIGKILL; nothing lost, sent twice or
executed twice, every status and stream as IB's records make it. And the soak fails when the
gateway is broken on purpose, so its zeros mean something."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

SOAK = Path(__file__).resolve().parents[2] / "benchmarks" / "soak.py"
BROKEN_GATEWAY = Path(__file__).resolve().parent / "broken_gateway"
COUNTERS = ("lost", "unknown", "sent_twice", "executed_twice", "wrong_filled_qty", "wrong_run_status",
            "event_gaps", "watch_mismatches")


def soak(database_url: str, runs: int, seed: int, **env: str) -> tuple[subprocess.CompletedProcess[str], dict[str, int]]:
    result = subprocess.run(
        [sys.executable, str(SOAK), "--runs", str(runs), "--wave", "5", "--seed", str(seed),
         "--database-url", database_url],
        capture_output=True, text=True, timeout=400, check=False, env={**os.environ, **env},
    )
    counts = {name: int(value) for name, value in re.findall(r"\b(\w+)=(\d+)\b", result.stdout) if name in COUNTERS}
    assert set(counts) == set(COUNTERS), result.stdout + result.stderr[-3000:]
    return result, counts


def test_a_short_soak_loses_and_duplicates_nothing(database_url):
    result, counts = soak(database_url, runs=60, seed=5)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert counts == dict.fromkeys(COUNTERS, 0)
    for fault in ("socket drop", "IB Gateway restart", "connectivity 1100", "execgw SIGKILL"):
        assert f"'{fault}" in result.stdout, f"the soak must have injected {fault!r}"


@pytest.mark.parametrize(("bug", "counter"), [("resend_same_id", "sent_twice"), ("drop_fill", "lost")])
def test_the_soak_fails_on_a_gateway_broken_on_purpose(tmp_path, bug, counter):
    result, counts = soak(f"sqlite:///{tmp_path}/soak.sqlite3", runs=15, seed=5, EXECGW_SOAK_BREAK=bug,
                          PYTHONPATH=os.pathsep.join(filter(None, [str(BROKEN_GATEWAY), os.environ.get("PYTHONPATH")])))
    assert result.returncode == 1, result.stdout + result.stderr[-3000:]
    assert counts[counter] > 0, result.stdout
