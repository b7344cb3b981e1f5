"""Prometheus metrics of one gateway, on a port of their own, off unless `metrics_listen` is set.

Most are read when scraped (`collector.py`) from what the gateway holds anyway; the hot paths
only bump loop-side cells (`buckets.py`). Trading counts come from the committed events, like the
journal (`activity.py`). `mode` is the run's trading mode (`paper`, `live`; `unknown` only when a
resumed run's mode could not be read); every configured mode shows, at 0 until it trades.

| metric | type | labels | what |
|---|---|---|---|
| `execgw_ib_connected` | gauge | mode | 1 while connected to the IB endpoint (handshake, nextValidId, no 1100) |
| `execgw_ib_taking_orders` | gauge | mode | 1 while connected and TWS takes API orders (not Read-Only, accounts of the right kind): health `execgw.ib.<mode>` |
| `execgw_ib_connections_total` | counter | mode | connections made, the first included: reconnects are this minus 1 |
| `execgw_orders_submitted_total` | counter | mode | orders recorded in a run and queued for IB (their PENDING_SUBMIT committed) |
| `execgw_orders_filled_total` | counter | mode | order status changes to FILLED |
| `execgw_orders_rejected_total` | counter | mode | order status changes to REJECTED |
| `execgw_orders_cancelled_total` | counter | mode | order status changes to CANCELLED (IB, a cancel, the deadline, withdrawn unsent) |
| `execgw_executions_stored_total` | counter | mode | executions stored (one per exec id; a correction is one more) |
| `execgw_commissions_stored_total` | counter | mode | commissions stored or changed on an execution |
| `execgw_ib_report_commit_seconds` | histogram | | IB callback received to its change committed and published |
| `execgw_watch_delivery_seconds` | histogram | delivery = live, replay | event stored to handed to a WatchRun stream (replay: read back for a watcher catching up, as old as the event) |
| `execgw_watch_streams` | gauge | | open WatchRun streams |
| `execgw_writer_batch_reports` | histogram | | IB reports per writer transaction |
| `execgw_writer_transaction_seconds` | histogram | leg = apply, statements, commit | a committed writer transaction's legs: its work applied in memory (with the reads it needs), its statements, its COMMIT. A slow COMMIT is the database's disk: every watcher waits for it, since nothing is streamed before it is stored |
| `execgw_reports_held` | gauge | | IB reports waiting in the engine's inbox: the writer's backlog, during an outage the reports held |
| `execgw_reports_dropped` | gauge | | reports dropped past the hold bound, awaiting reconciliation (0 again once it starts) |
| `execgw_reports_poison_total` | counter | | reports that could not be applied (a bug), logged and skipped |
| `execgw_database_ok` | gauge | | 1 while the database takes the writer's transactions |
| `execgw_database_outages_total` | counter | | times it stopped taking them (`outages.py`: told by the report intake at each transition) |
| `execgw_accepting_runs` | gauge | | 1 while SubmitRun takes new runs (database ok, nothing dropped or being recovered) |
| `execgw_pacing_wait_seconds` | summary | mode | time outgoing IB requests waited for their pacing turn (count: turns taken) |
| `execgw_reconciliations_total` | counter | mode, scope = full, run_end | reconciliations that asked IB |
| `execgw_reconciliations_failed_total` | counter | mode, scope | of those, refused by IB or left unanswered (IB quiet for the timeout), or refused by the database |
| `execgw_reconciliation_orders_settled_total` | counter | mode | unfinished orders a full reconciliation settled because IB knew nothing of them |
"""
