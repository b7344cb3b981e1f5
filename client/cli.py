"""``execgw submit | watch | runs | run | cancel | status | settle | demo``: the gateway from a terminal.

Exit codes (all commands):
  0  done; for watch (and submit --watch, demo) the run ended SUCCESS
  1  error: request refused (the fields are listed), run not found, gateway unreachable, bad order
     argument or file
  2  the run ended PARTIAL (argparse also uses 2 for a usage error, with a usage message)
  3  the run ended FAILED or CANCELLED
  4  the watch stream ended while the run was still RUNNING
  130 interrupted (Ctrl-C); watch prints where to resume
"""

from __future__ import annotations

import argparse
import functools
import getpass
import os
import socket
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from rich.text import Text

from execgw.client.client import DEFAULT_TARGET, ExecGwClient
from execgw.client.errors import (
    Conflict,
    ExecGwError,
    InvalidRequest,
    NotFound,
    PreconditionFailed,
    Unavailable,
)
from execgw.client.orders import Order, OrderFormatError, load_orders_file, parse_order_arg
from execgw.client.progress import RunProgress, follow_run
from execgw.client.render import cancel_view, make_console, run_view, runs_table, submit_view
from execgw.client.status_render import settled_view, status_json, status_view
from execgw.client.tls import CA_ENV, CERT_ENV, KEY_ENV, ClientTls, TlsFileError
from execgw.client.token import TOKEN_ENV, TOKEN_FILE_ENV, TokenError
from execgw.v1 import execution_pb2 as pb

TARGET_ENV = "EXECGW_TARGET"

EXIT_OK, EXIT_ERROR, EXIT_PARTIAL, EXIT_FAILED, EXIT_RUNNING, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130
EXIT_BY_RUN_STATUS = {
    pb.RUN_STATUS_SUCCESS: EXIT_OK,
    pb.RUN_STATUS_PARTIAL: EXIT_PARTIAL,
    pb.RUN_STATUS_FAILED: EXIT_FAILED,
    pb.RUN_STATUS_CANCELLED: EXIT_FAILED,
}
EXIT_CODES_HELP = ("exit codes: 0 SUCCESS (or done), 1 error, 2 PARTIAL, 3 FAILED/CANCELLED, "
                   "4 stream ended while RUNNING, 130 interrupted")

ERROR_LABELS: dict[type[ExecGwError], str] = {
    NotFound: "not found", Conflict: "conflict", PreconditionFailed: "refused", InvalidRequest: "request refused",
}

Command = Callable[[argparse.Namespace], int]


def register(subparsers: argparse._SubParsersAction) -> None:
    connection = argparse.ArgumentParser(add_help=False)
    connection.add_argument("--target", metavar="HOST:PORT",
                            help=f"the gateway (default ${TARGET_ENV}, else {DEFAULT_TARGET})")
    connection.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                            help="deadline of each request (default 10)")
    connection.add_argument("--tls-ca", type=Path, metavar="FILE",
                            help=f"connect with TLS, trusting this CA's PEM (default ${CA_ENV})")
    connection.add_argument("--tls-cert", type=Path, metavar="FILE",
                            help=f"client certificate PEM, for a gateway that requires one (default ${CERT_ENV})")
    connection.add_argument("--tls-key", type=Path, metavar="FILE",
                            help=f"key of --tls-cert (default ${KEY_ENV})")
    connection.add_argument("--token-file", type=Path, metavar="FILE",
                            help=f"file holding the caller's token (default ${TOKEN_ENV}, else the file "
                                 f"${TOKEN_FILE_ENV}); never give the token itself as an argument: ps shows it")

    submit = subparsers.add_parser(
        "submit", parents=[connection], help="submit a run of market orders",
        description="Submit market orders as one run and print the run id and the orders' IB order ids.",
        epilog="ORDER is SIDE:SYMBOL:QUANTITY[:CLIENT_ORDER_ID], e.g. BUY:AAPL:10 or SELL:MSFT:5:rebal-42 "
               "(a client order id is generated when omitted; give your own to make re-running the command "
               "safe: the gateway then returns the existing run and sends nothing twice). --file takes JSON (a list of objects with "
               "the OrderSpec field names) or CSV (header side,symbol,quantity[,client_order_id,...]). "
               + EXIT_CODES_HELP,
    )
    submit.add_argument("orders", nargs="*", metavar="ORDER", help="SIDE:SYMBOL:QUANTITY[:CLIENT_ORDER_ID]")
    submit.add_argument("--file", metavar="FILE", help="orders from a .json or .csv file")
    submit.add_argument("--mode", choices=("paper", "live"), default="paper", help="default paper")
    submit.add_argument("--account", default="", help="IB account (default: the endpoint's default account)")
    submit.add_argument("--deadline", type=float, metavar="SECONDS",
                        help="cancel what has not filled after this long (default: the gateway's)")
    submit.add_argument("--submitted-by", default=None, metavar="WHO", help="a note kept with the run (default user@host); the gateway records the "
                             "authenticated caller as submitted_by")
    submit.add_argument("--confirm-live", action="store_const", const="LIVE", default="",
                        help="required with --mode live: confirms the run is meant to trade real money")
    submit.add_argument("--watch", action="store_true", help="then follow the run to its end, like watch")
    submit.set_defaults(func=run_submit)

    watch = subparsers.add_parser(
        "watch", parents=[connection], help="follow a run's events to its end",
        description="Follow a run: its orders' states and an event log, until its final status.",
        epilog=EXIT_CODES_HELP,
    )
    watch.add_argument("run_id", metavar="RUN_ID")
    watch.add_argument("--after", type=count(0), default=0, metavar="N", help="start after event sequence N")
    watch.set_defaults(func=run_watch)

    runs = subparsers.add_parser("runs", parents=[connection], help="list runs, newest first")
    runs.add_argument("--limit", type=count(1), default=20, metavar="N", help="at most N runs (default 20)")
    runs.set_defaults(func=run_runs)

    run = subparsers.add_parser("run", parents=[connection], help="show a run with its orders and fills")
    run.add_argument("run_id", metavar="RUN_ID")
    run.set_defaults(func=run_show)

    cancel = subparsers.add_parser("cancel", parents=[connection], help="cancel a run's open orders")
    cancel.add_argument("run_id", metavar="RUN_ID")
    cancel.set_defaults(func=run_cancel)

    status = subparsers.add_parser(
        "status", parents=[connection], help="the gateway's state: IB endpoints, database, open runs, UNKNOWN orders",
        description="What the gateway is doing now: each IB endpoint (connected, accounts, next order id, last "
                    "reconciliation, pacing), the database (taking writes, backlog), its open runs and the UNKNOWN "
                    "orders waiting for an operator. Needs the read permission.",
    )
    status.add_argument("--json", action="store_true", help="print the status as JSON (the contract's field names)")
    status.set_defaults(func=run_status)

    settle = subparsers.add_parser(
        "settle", parents=[connection], help="settle an UNKNOWN order as never at IB (the gateway's books only)",
        description="Conclude an UNKNOWN order as never having reached IB, after checking TWS / Account "
                    "Management: the gateway cancels it in its books, and its run ends if it was the last open "
                    "order. Nothing is sent to IB; a fill IB reports later is still recorded and corrects the "
                    "order and the run. Needs the admin permission and the order's mode (paper / live).",
    )
    settle.add_argument("client_order_id", metavar="CLIENT_ORDER_ID", help="the UNKNOWN order (see execgw status)")
    settle.add_argument("--note", required=True, metavar="TEXT",
                        help="required: what you checked and found; kept in the order's status reason")
    settle.set_defaults(func=run_settle)

    from execgw.client import demo  # late: demo imports this module's helpers

    demo.register(subparsers)


def count(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def target_of(args: argparse.Namespace) -> str:
    return args.target or os.environ.get(TARGET_ENV) or DEFAULT_TARGET


def tls_of(args: argparse.Namespace) -> ClientTls | None:
    """TLS from the flags when any is given, else from the environment; None is plaintext."""
    if args.tls_ca or args.tls_cert or args.tls_key:
        return ClientTls(args.tls_ca, args.tls_cert, args.tls_key)
    return ClientTls.from_environment()


def exit_code(status: int) -> int:
    return EXIT_BY_RUN_STATUS.get(status, EXIT_RUNNING)


def reports_errors(command: Command) -> Command:
    """Expected failures become one line on stderr and exit code 1, never a traceback."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except (ExecGwError, OrderFormatError, TlsFileError, TokenError) as error:
            return print_error(describe_error(error, args))
        except KeyboardInterrupt:
            return EXIT_INTERRUPTED

    return run


def print_error(message: str) -> int:
    """``error: <message>`` on stderr; returns EXIT_ERROR."""
    make_console(stderr=True).print(Text(f"error: {message}", style="red"), soft_wrap=True)
    return EXIT_ERROR


def describe_error(error: Exception, args: argparse.Namespace) -> str:
    if isinstance(error, InvalidRequest) and error.violations:
        return "request refused: " + "; ".join(f"{field}: {why}" for field, why in error.violations)
    if isinstance(error, Unavailable):
        return f"gateway {target_of(args)} unavailable: {error.message}"
    if isinstance(error, ExecGwError):
        return f"{ERROR_LABELS.get(type(error), error.code.name)}: {error.message}"
    return str(error)


def connect(args: argparse.Namespace) -> ExecGwClient:
    return ExecGwClient(target_of(args), tls=tls_of(args), timeout=args.timeout, token_file=args.token_file)


def read_orders(args: argparse.Namespace) -> list[Order]:
    orders = load_orders_file(args.file) if args.file else []
    orders.extend(parse_order_arg(text) for text in args.orders)
    if not orders:
        raise OrderFormatError("no orders: give ORDER arguments (e.g. BUY:AAPL:10) or --file")
    return orders


def default_submitter() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name (some containers)
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def watch_to_end(client: ExecGwClient, run_id: str, *, after_sequence: int = 0,
                 progress: RunProgress | None = None) -> int:
    """Follows the run on stdout; the exit code of its final status. On a lost gateway or Ctrl-C,
    says how to resume before passing the error on."""
    console = make_console()
    progress = progress or RunProgress.from_run(client.get(run_id), with_state=after_sequence > 0)
    try:
        follow_run(client, console, run_id, after_sequence=after_sequence, progress=progress)
    except (Unavailable, KeyboardInterrupt):
        make_console(stderr=True).print(
            f"resume with: execgw watch {run_id} --after {progress.last_sequence}", soft_wrap=True)
        raise
    return exit_code(progress.status)


@reports_errors
def run_submit(args: argparse.Namespace) -> int:
    orders = read_orders(args)
    deadline = timedelta(seconds=args.deadline) if args.deadline is not None else None
    with connect(args) as client:
        result = client.submit(orders, mode=args.mode, account=args.account, deadline=deadline,
                               submitted_by=args.submitted_by or default_submitter(),
                               confirm_live=args.confirm_live)
        console = make_console()
        console.print(submit_view(result))
        if not args.watch:
            console.print(f"follow it with: execgw watch {result.run_id}", style="dim", soft_wrap=True)
            return EXIT_OK
        return watch_to_end(client, result.run_id, progress=RunProgress.from_run(result.run, with_state=False))


@reports_errors
def run_watch(args: argparse.Namespace) -> int:
    with connect(args) as client:
        return watch_to_end(client, args.run_id, after_sequence=args.after)


@reports_errors
def run_runs(args: argparse.Namespace) -> int:
    with connect(args) as client:
        runs = list(client.list(page_size=min(args.limit, 500), limit=args.limit))
    console = make_console()
    console.print(runs_table(runs) if runs else "no runs yet")
    return EXIT_OK


@reports_errors
def run_show(args: argparse.Namespace) -> int:
    with connect(args) as client:
        run = client.get(args.run_id)
    make_console().print(run_view(run))
    return EXIT_OK


@reports_errors
def run_cancel(args: argparse.Namespace) -> int:
    with connect(args) as client:
        response = client.cancel(args.run_id)
    make_console().print(cancel_view(response))
    return EXIT_OK


@reports_errors
def run_status(args: argparse.Namespace) -> int:
    with connect(args) as client:
        status = client.status()
    if args.json:
        print(status_json(status))
    else:
        make_console().print(status_view(status))
    return EXIT_OK


@reports_errors
def run_settle(args: argparse.Namespace) -> int:
    with connect(args) as client:
        settled = client.settle(args.client_order_id, args.note)
    make_console().print(settled_view(settled))
    return EXIT_OK
