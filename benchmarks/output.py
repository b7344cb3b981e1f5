"""The results: one rich table (each figure beside its floor and the load average while it was
measured) and the JSON file."""

from __future__ import annotations

import json
import math
import os
import platform
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from benchmarks.figures import SECTIONS, Figure, Report


def _number(value: float) -> str:
    if math.isnan(value):
        return "nan"
    magnitude = abs(value)
    if magnitude >= 100 or value == int(value):
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}" if magnitude >= 0.1 else f"{value:.3g}"


def _lines(figure: Figure | None, which: str) -> list[str]:
    """One value per part (p50, p95, p99 each on its own line), or nothing."""
    summary = None if figure is None else figure.summary()
    if figure is None or summary is None:
        return []
    return [_number(summary[which][part]) for part in figure.parts]


def _values(figure: Figure | None, which: str) -> str:
    return "\n".join(_lines(figure, which))


def _spread(figure: Figure | None) -> str:
    if figure is None or len(figure.runs) < 2:
        return ""
    return "\n".join(f"{low} – {high}" for low, high in zip(_lines(figure, "min"), _lines(figure, "max"), strict=True))


def _unit(figure: Figure) -> str:
    if figure.parts == ("value",):
        return figure.unit
    return "\n".join(f"{figure.unit} {part}" for part in figure.parts)


def _load(figure: Figure) -> str:
    if not figure.loads:
        return ""
    low, high = min(figure.loads), max(figure.loads)
    return f"{low:.1f}" if high - low < 0.05 else f"{low:.1f}–{high:.1f}"


def table(report: Report, title: str) -> Table:
    grid = Table(title=title, title_justify="left", header_style="bold")
    grid.add_column("figure", overflow="fold", min_width=40, max_width=64)
    grid.add_column("db", no_wrap=True)
    grid.add_column("median", justify="right", no_wrap=True)
    grid.add_column("min – max", justify="right", overflow="fold", max_width=34)
    grid.add_column("unit", no_wrap=True)
    grid.add_column("floor (same run)", overflow="fold", max_width=48)
    grid.add_column("floor median", justify="right", no_wrap=True)
    grid.add_column("load 1m", justify="right", no_wrap=True)
    for section, heading in SECTIONS.items():
        figures = report.in_section(section)
        if not figures:
            continue
        grid.add_row(Text(heading, style="bold cyan"), end_section=False)
        for figure in figures:
            floor = report.floor_of(figure)
            name = Text(figure.name)
            if figure.note:
                name.append(f"\n  {figure.note}", style="dim")
            reason = figure.reason_not_measured()
            if reason is not None:
                median: Text | str = Text("not measured", style="yellow")
                spread: Text | str = Text(reason, style="yellow")
            else:
                median, spread = _values(figure, "median"), _spread(figure)
                if figure.failures:
                    spread = Text(f"{spread}\n{len(figure.failures)} repeat(s) failed: {figure.failures[0]}",
                                  style="yellow")
            floor_name = "" if floor is None else floor.name + (f" [{floor.database}]" if floor.database else "")
            floor_median = "" if floor is None else (_values(floor, "median") or "not measured")
            grid.add_row(name, figure.database or "", median, spread, _unit(figure), floor_name, floor_median,
                         _load(figure))
    return grid


def machine(load_start: tuple[float, float, float], load_end: tuple[float, float, float]) -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(), "platform": platform.platform(), "python": sys.version.split()[0],
        "load_average_start": list(load_start), "load_average_end": list(load_end),
    }


def show(report: Report, header: dict[str, Any]) -> None:
    load_start, load_end = header["machine"]["load_average_start"], header["machine"]["load_average_end"]
    title = (f"execgw benchmarks, {header['mode']}, repeats: {header['repeat']}, on {header['machine']['cpus']} CPUs; "
             f"load average (1/5/15 min) at start {' '.join(f'{v:.2f}' for v in load_start)}, "
             f"at end {' '.join(f'{v:.2f}' for v in load_end)}")
    # Wide even into a file or a pipe (rich would take 80 columns there): a row per figure.
    console = Console(width=max(Console().width, 230), soft_wrap=False)
    console.print(table(report, title))
    for reason in header.get("databases_skipped", []):
        console.print(f"database not measured: {reason}", style="yellow")


def write_json(path: Path, report: Report, header: dict[str, Any]) -> None:
    sections: dict[str, Any] = {}
    for section, heading in SECTIONS.items():
        figures = report.in_section(section)
        sections[section] = {"title": heading,
                             "figures": [figure.as_json(report.floor_of(figure)) for figure in figures]}
    path.write_text(json.dumps({**header, "sections": sections}, indent=2, default=str) + "\n")


def load_json(path: Path) -> tuple[Report, dict[str, Any]]:
    """A saved run's figures and header, to print its table again (`--table-from`)."""
    data = json.loads(path.read_text())
    report = Report()
    for section in data["sections"].values():
        for saved in section["figures"]:
            figure = Figure(
                saved["section"], saved["name"], saved["unit"], saved["database"], tuple(saved["parts"]),
                saved["floor"]["key"] if saved["floor"] else None, saved["note"], saved["runs"],
                saved["load_average_1min"], saved["details"], saved["failures"], saved["not_measured"],
            )
            report.figures[figure.key] = figure
    return report, {key: value for key, value in data.items() if key != "sections"}
