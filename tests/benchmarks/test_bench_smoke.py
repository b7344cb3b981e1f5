"""`python -m benchmarks --quick` end to end on SQLite: the JSON has every section, and every
figure in it has numbers (min, median and max of each part) with the load average beside each
repeat. Not a speed test: no figure is compared with anything, speed never lives in a timed test.
(A repeat may fail on a busy shared machine, saying why in the JSON; a figure no repeat could
measure fails the test.)"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = {"floors", "latency", "throughput", "submission", "fanout", "replay", "soak", "peer"}


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@pytest.mark.timeout(1500)
def test_quick_benchmarks_write_every_section_with_numbers(tmp_path):
    written = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--database-url", "sqlite", "--json", str(written)],
        cwd=ROOT, capture_output=True, text=True, timeout=1400, check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "1. Floors" in result.stdout and "8. The peer" in result.stdout, result.stdout[-2000:]

    data = json.loads(written.read_text())
    assert data["databases"] == ["sqlite"]
    assert data["repeat"] == 3
    for moment in ("load_average_start", "load_average_end"):
        assert len(data["machine"][moment]) == 3 and all(map(is_number, data["machine"][moment]))
    assert set(data["sections"]) == SECTIONS
    for name, section in data["sections"].items():
        assert section["figures"], f"section {name} has no figure"
        for figure in section["figures"]:
            where = f"{name}: {figure['name']}"
            assert figure["not_measured"] is None, f"{where}: not measured: {figure['not_measured']}"
            assert figure["runs"], where
            assert len(figure["runs"]) + len(figure["failures"]) >= data["repeat"], where
            assert all(map(is_number, figure["load_average_1min"])), where
            for which in ("min", "median", "max"):
                values = figure["summary"][which]
                assert set(values) == set(figure["parts"]), where
                assert all(map(is_number, values.values())), f"{where}: {which} {values}"
            if figure["floor"] is not None:
                assert figure["floor"]["not_measured"] is None, f"{where}: its floor was not measured"
