"""benchmarks/replay.py's `bound`: what a replay within 2x the decoder leaves for the rest of the
gateway's work once the floors (ibapi's decoding, IB sending, the rows written bare) have had
their CPU. Its figures back a claim about what this machine allows, so its arithmetic is held
here against sums done by hand."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def replay(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(ROOT))  # benchmarks/ is a folder of the repository, not installed
    return importlib.import_module("benchmarks.replay")


def timed(replay: ModuleType, **measured: float | None) -> object:
    figures: dict[str, float | None] = dict(
        decoder_alone=2.0, gateway=12.0, connected=0.1, first_stored=0.5, gateway_cpu=9.0, writer_cpu=5.0,
        decoding_cpu=2.5, simulator_cpu=0.6, floor_simulator_cpu=0.5, database_cpu=3.0, decoder_cpu=1.5)
    figures.update(measured)
    return replay.Replay(**figures)


def test_the_floors_cpu_over_the_cores_and_what_2x_leaves_of_it(replay: ModuleType) -> None:
    rows = replay.db_floor.BareWrite(seconds=4.0, client_cpu=1.0, server_cpu=2.0)
    limit = replay.bound(10_000, 2, timed(replay), rows)
    # The floors: decoding 1.5 + IB sending 0.5 + the rows' client 1.0 and server 2.0 = 5 CPU-s.
    assert limit.least == pytest.approx(2.5)
    # 2x the decoder is 4 s; on 2 cores 8 CPU-s, 3 of them left: 300 µs for each of 10,000.
    assert limit.room_us == pytest.approx(300)
    # In one process the decoding (1.5) and the statements (1.0) take their turns in those 4 s.
    assert limit.room_one_process_us == pytest.approx(150)
    # The gateway used 9 CPU-s, 2.5 of them the floors' own.
    assert limit.rest_us == pytest.approx(650)


def test_sqlite_has_no_server_its_engine_is_in_the_rows_client(replay: ModuleType) -> None:
    rows = replay.db_floor.BareWrite(seconds=1.2, client_cpu=1.2, server_cpu=None)
    limit = replay.bound(10_000, 2, timed(replay, database_cpu=None), rows)
    assert limit.least == pytest.approx((1.5 + 0.5 + 1.2) / 2)
    assert limit.room_us == pytest.approx((8 - 3.2) * 100)
    assert limit.room_one_process_us == pytest.approx((4 - 2.7) * 100)
