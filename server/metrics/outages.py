"""Database outages counted as the report intake marks the database down.

The intake tells its listeners each time the database stops or starts taking the writer's
transactions (`ReportIntake.database_listeners`), so every outage is counted once, however
short or long: a scrape every 15 s would miss most of them, and looking at `database_ok` on a
timer could miss one shorter than its period.
"""

from __future__ import annotations


class OutageWatch:
    def __init__(self) -> None:
        self.outages = 0  # transitions from taking writes to not
        self._ok = True

    def database_changed(self, ok: bool) -> None:
        """The intake's listener; on the loop. A repeated "down" is the same outage."""
        if self._ok and not ok:
            self.outages += 1
        self._ok = ok
