"""The caller's bearer token: from EXECGW_TOKEN, or a file named by EXECGW_TOKEN_FILE or --token-file.

Never from a command-line value: every local user sees those in ``ps``. A token given twice (the
variable and a file variable) is refused rather than one silently chosen.
"""

from __future__ import annotations

import os
from pathlib import Path

TOKEN_ENV = "EXECGW_TOKEN"
TOKEN_FILE_ENV = "EXECGW_TOKEN_FILE"


class TokenError(ValueError):
    """The token could not be read; the message names the file or variable, never the token."""


def token_from(token_file: Path | None = None) -> str | None:
    """The token: from ``token_file`` when given, else EXECGW_TOKEN, else the file named by
    EXECGW_TOKEN_FILE; None when there is none (a loopback gateway without callers needs none)."""
    if token_file is None:
        value = os.environ.get(TOKEN_ENV)
        named = os.environ.get(TOKEN_FILE_ENV)
        if value and named:
            raise TokenError(f"both {TOKEN_ENV} and {TOKEN_FILE_ENV} are set; keep one")
        if value:
            return _checked(value.strip(), TOKEN_ENV)
        if not named:
            return None
        token_file = Path(named)
    try:
        text = token_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenError(f"token file {token_file} cannot be read: {exc.__class__.__name__}") from None
    return _checked(text.strip(), f"token file {token_file}")


def bearer_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    """The call metadata carrying the token (none without one)."""
    return (("authorization", f"Bearer {token}"),) if token else ()


def _checked(token: str, source: str) -> str:
    if not token or any(c.isspace() or not c.isprintable() for c in token):
        raise TokenError(f"{source} does not hold one token (empty, or several words or lines)")
    return token
