"""``execgw caller add | remove | list``: the callers file, from a terminal.

``add`` prints the new token once, on stdout and nowhere else: the file keeps only its SHA-256.
A running gateway notices the changed file at its next call (``callers_file.py``): no restart.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from execgw.server.api.callers import (
    CallersFileError,
    Permission,
    add_caller,
    ib_account_id,
    load_callers,
    remove_caller,
)

CALLERS_FILE_ENV = "EXECGW_CALLERS_FILE"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("caller", help="add, remove or list the callers allowed to use the gateway")
    commands = parser.add_subparsers(dest="caller_command", metavar="ACTION", required=True)
    file_option = argparse.ArgumentParser(add_help=False)
    file_option.add_argument("--callers-file", type=Path, metavar="FILE",
                             help=f"the callers file (default ${CALLERS_FILE_ENV})")

    add = commands.add_parser(
        "add", parents=[file_option], help="add a caller with a new token, printed once",
        description="Add a caller to the callers file (created if missing) with a new random token. "
                    "The token is printed once on stdout; only its SHA-256 is stored.",
    )
    add.add_argument("name", metavar="NAME", help="the caller's name, recorded as submitted_by / cancelled_by")
    add.add_argument("--permissions", required=True, type=_listed(Permission, "permission"), metavar="P[,P]",
                     help="read, paper, live, admin (comma-separated); admin settles UNKNOWN orders (execgw settle), "
                          "of the modes the caller also holds")
    # An empty list is an error, not "every account": `--accounts "$UNSET"` must not widen a caller.
    add.add_argument("--accounts", type=_listed(ib_account_id, "account"), metavar="ACCOUNT[,ACCOUNT]",
                     help="only these IB accounts (default, when left out: every account)")
    add.add_argument("--certificate-names", type=_listed(str), default=[], metavar="NAME[,NAME]",
                     help="mTLS client certificate CN or SAN names that authenticate as this caller")
    add.set_defaults(func=run_add)

    remove = commands.add_parser("remove", parents=[file_option], help="remove a caller (revokes its token)")
    remove.add_argument("name", metavar="NAME")
    remove.set_defaults(func=run_remove)

    listing = commands.add_parser("list", parents=[file_option], help="the callers and what they may do")
    listing.set_defaults(func=run_list)


def _listed(kind: Callable[[str], object], what: str | None = None) -> Callable[[str], list]:
    """Comma-separated values; with `what`, at least one of them is required."""

    def parse(text: str) -> list:
        try:
            values = [kind(part.strip()) for part in text.split(",") if part.strip()]
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        if what is not None and not values:
            raise argparse.ArgumentTypeError(f"no {what} given in {text!r}")
        return values

    return parse


def callers_file_of(args: argparse.Namespace) -> Path:
    path = args.callers_file or os.environ.get(CALLERS_FILE_ENV)
    if not path:
        raise CallersFileError(f"no callers file: give --callers-file or set {CALLERS_FILE_ENV}")
    return Path(path)


def run_add(args: argparse.Namespace) -> int:
    try:
        path = callers_file_of(args)
        token = add_caller(path, args.name, args.permissions, accounts=args.accounts,
                           certificate_names=args.certificate_names)
    except CallersFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"caller {args.name!r} added to {path}; its token follows, shown this once (a gateway serving "
          "this file accepts it from its next call; give it to the caller as EXECGW_TOKEN or in a file read "
          "through EXECGW_TOKEN_FILE):",
          file=sys.stderr)
    print(token)
    return 0


def run_remove(args: argparse.Namespace) -> int:
    try:
        path = callers_file_of(args)
        remove_caller(path, args.name)
    except CallersFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"caller {args.name!r} removed from {path} (a gateway serving this file refuses its token from its "
          "next call)", file=sys.stderr)
    return 0


def run_list(args: argparse.Namespace) -> int:
    try:
        for caller in load_callers(callers_file_of(args)).described():
            print(caller)
    except CallersFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
