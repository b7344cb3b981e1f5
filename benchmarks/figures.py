"""Figures measured over repeats: each keeps every repeat's values, the 1-minute load average at
the moment it was taken, and the key of the floor it is read against (measured in the same run).

A figure that could not be measured honestly carries the reason instead of numbers; the table
and the JSON say "not measured" with that reason, never a guess.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

SECTIONS = {
    "floors": "1. Floors",
    "latency": "2. Event latency",
    "throughput": "3. Throughput",
    "submission": "4. Submission",
    "fanout": "5. Fan-out",
    "replay": "6. Reconnect replay",
    "soak": "7. Soak memory",
    "peer": "8. The peer",
}


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


def percentiles(values: list[float], wanted: tuple[int, ...] = (50, 95, 99)) -> dict[str, float]:
    """Nearest-rank percentiles (no interpolation: every figure printed is a measured value)."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    last = len(ordered) - 1
    return {f"p{p}": ordered[min(last, max(0, round(p / 100 * len(ordered)) - 1))] for p in wanted}


@dataclass
class Figure:
    section: str
    name: str
    unit: str
    database: str | None = None  # None: the figure does not involve a database
    parts: tuple[str, ...] = ("value",)
    floor: str | None = None  # key of the floor figure
    note: str = ""
    runs: list[dict[str, float]] = field(default_factory=list)
    loads: list[float] = field(default_factory=list)
    details: list[Any] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # repeats that could not be measured, and why
    not_measured: str | None = None  # set when no repeat can be measured at all

    @property
    def key(self) -> str:
        return figure_key(self.section, self.name, self.database)

    def add(self, values: dict[str, float] | float, details: Any = None) -> None:
        """One repeat's values (one number, or one per part), with the load average now."""
        if not isinstance(values, dict):
            values = {self.parts[0]: float(values)}
        missing = set(self.parts) - set(values)
        if missing:
            raise ValueError(f"{self.key}: no value for {sorted(missing)}")
        self.runs.append({part: float(values[part]) for part in self.parts})
        self.loads.append(load_average()[0])
        if details is not None:
            self.details.append(details)

    def fail(self, reason: str) -> None:
        self.failures.append(reason)
        self.loads.append(load_average()[0])

    def summary(self) -> dict[str, dict[str, float]] | None:
        """{"min": {part: v}, "median": {...}, "max": {...}} over the repeats, or None."""
        if not self.runs:
            return None
        out: dict[str, dict[str, float]] = {"min": {}, "median": {}, "max": {}}
        for part in self.parts:
            values = [run[part] for run in self.runs]
            out["min"][part] = min(values)
            out["median"][part] = statistics.median(values)
            out["max"][part] = max(values)
        return out

    def reason_not_measured(self) -> str | None:
        if self.runs:
            return None
        return self.not_measured or "; ".join(dict.fromkeys(self.failures)) or "not run"

    def as_json(self, floor: Figure | None) -> dict[str, Any]:
        return {
            "section": self.section,
            "name": self.name,
            "database": self.database,
            "unit": self.unit,
            "parts": list(self.parts),
            "runs": self.runs,
            "summary": self.summary(),
            "load_average_1min": self.loads,
            "floor": None if floor is None else {
                "key": floor.key, "name": floor.name, "database": floor.database, "unit": floor.unit,
                "summary": floor.summary(), "not_measured": floor.reason_not_measured(),
            },
            "note": self.note,
            "failures": self.failures,
            "not_measured": self.reason_not_measured(),
            "details": self.details,
        }


def figure_key(section: str, name: str, database: str | None) -> str:
    return f"{section}/{name}/{database or '-'}"


@dataclass
class Report:
    """Every figure of one invocation, in the order they were declared."""

    figures: dict[str, Figure] = field(default_factory=dict)

    def figure(self, section: str, name: str, unit: str, *, database: str | None = None,
               parts: tuple[str, ...] = ("value",), floor: str | None = None, note: str = "") -> Figure:
        """The figure with this section, name and database; declared on first use."""
        key = figure_key(section, name, database)
        if key not in self.figures:
            if section not in SECTIONS:
                raise ValueError(f"unknown section {section!r}")
            self.figures[key] = Figure(section, name, unit, database, parts, floor, note)
        return self.figures[key]

    def floor_of(self, figure: Figure) -> Figure | None:
        return self.figures.get(figure.floor) if figure.floor else None

    def in_section(self, section: str) -> list[Figure]:
        return [f for f in self.figures.values() if f.section == section]



def guarded(figures: list[Figure], measure: Callable[[], None]) -> bool:
    """Runs one repeat's measurement; an error fails that repeat of these figures, with its
    reason, instead of ending the invocation. True if it ran through."""
    try:
        measure()
    except Exception as exc:
        for figure in figures:
            figure.fail(f"{type(exc).__name__}: {exc}")
        return False
    return True
