"""A short run of benchmarks/soak.py: random scenarios, socket drops, IB Gateway restarts,
connectivity losses and gateway restarts, and not one fill lost, duplicated or sent twice."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SOAK = Path(__file__).resolve().parents[2] / "benchmarks" / "soak.py"


def test_a_short_soak_loses_and_duplicates_nothing(database_url):
    result = subprocess.run(
        [sys.executable, str(SOAK), "--runs", "60", "--wave", "5", "--seed", "5", "--database-url", database_url],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "lost=0 duplicated=0 unknown=0 sent_twice=0" in result.stdout
    assert "faults injected: {}" not in result.stdout, "the soak must have injected faults"
