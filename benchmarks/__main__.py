"""One benchmark command: every figure of the gateway beside its floor, measured in the same run.

    .venv/bin/python -m benchmarks [--quick] [--repeat 3] [--database-url URL ...] [--json PATH]
                                   [--sections floors,latency,...]

Sections: 1 floors (bare database transaction, bare grpc.aio streaming, ibapi's decoder, the
simulator's socket ceiling, the pacing arithmetic), 2 event latency, 3 throughput, 4 submission,
5 fan-out, 6 reconnect replay, 7 soak memory, 8 the peer (ib_async and the gateway's receive
path). Each figure is measured --repeat times (min/median/max) on each database: by default a
temporary SQLite file and, if a MariaDB/MySQL answers at mysql+pymysql://root@127.0.0.1:3306/,
a database created for each measurement and dropped after it. `--database-url` replaces that
choice (repeatable; `sqlite` means a temporary SQLite file; a MySQL URL names the server where
the fresh databases are created, prefixed with its database name if it has one).

The gateway runs as `execgw serve` in its own process, the simulator, the watchers and the bare
gRPC server each in theirs: 2-CPU machines are shared, so the load average is printed beside
every figure. --quick makes every part seconds-long (a smoke test, not figures to quote).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks import (
    bench_replay,
    fanout,
    floors,
    latency,
    output,
    peer,
    soak_memory,
    submission,
    throughput,
)
from benchmarks.figures import SECTIONS, Report, load_average
from benchmarks.plan import QUICK, Context, Sizes
from benchmarks.rig import DEFAULT_MYSQL_URL, Database, mysql_database, sqlite_database

PER_DATABASE: dict[str, Callable[[Context, Database], None]] = {
    "latency": latency.run,
    "throughput": throughput.run,
    "submission": submission.run,
    "fanout": fanout.run,
    "replay": bench_replay.run,
    "soak": soak_memory.run,
}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="every part seconds-long")
    parser.add_argument("--repeat", type=int, default=3, help="repeats of every figure (default 3)")
    parser.add_argument("--database-url", action="append", metavar="URL",
                        help="sqlite, or a MySQL/MariaDB server URL (repeatable); default: sqlite and, if reachable, "
                             f"{DEFAULT_MYSQL_URL}")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write every figure, repeat and detail here")
    parser.add_argument("--table-from", type=Path, metavar="PATH",
                        help="print the table of a run saved with --json, measuring nothing")
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help=f"comma-separated subset of {','.join(SECTIONS)} (floors always run: they are "
                             "what the rest is read against)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    args.sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(args.sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown sections: {', '.join(unknown)}")
    return args


def databases(urls: list[str] | None) -> tuple[list[Database], list[str]]:
    """The databases to measure, and why any asked-for (or the default MySQL) is left out."""
    chosen: list[Database] = []
    skipped: list[str] = []
    explicit = urls is not None
    for url in urls or ["sqlite", DEFAULT_MYSQL_URL]:
        if url == "sqlite" or url.startswith("sqlite:"):
            chosen.append(sqlite_database())
            continue
        found = mysql_database(url)
        if isinstance(found, Database):
            chosen.append(found)
        elif explicit:
            raise SystemExit(f"--database-url: {found}")
        else:
            skipped.append(found)
    return chosen, skipped


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.table_from:
        output.show(*output.load_json(args.table_from))
        return 0
    chosen, skipped = databases(args.database_url)
    sizes: Sizes = QUICK if args.quick else Sizes()
    load_start = load_average()
    started = time.time()
    report = Report()
    with tempfile.TemporaryDirectory(prefix="execgw-bench-") as folder:
        ctx = Context(report, sizes, args.repeat, Path(folder))
        floors.run_shared(ctx)
        for database in chosen:
            floors.run_database(ctx, database)
            for section, run in PER_DATABASE.items():
                if section in args.sections:
                    run(ctx, database)
        if "peer" in args.sections:
            peer.run(ctx)
    header = {
        "command": "python -m benchmarks " + " ".join(sys.argv[1:] if argv is None else argv),
        "mode": "quick (seconds-long parts: not figures to quote)" if args.quick else "full",
        "repeat": args.repeat,
        "databases": [d.label for d in chosen],
        "databases_skipped": skipped,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "seconds": round(time.time() - started, 1),
        "machine": output.machine(load_start, load_average()),
    }
    output.show(report, header)
    if args.json:
        output.write_json(args.json, report, header)
    return 0


if __name__ == "__main__":
    sys.exit(main())
