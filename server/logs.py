"""The gateway's log output: key=value text (the default) or JSON lines, a level per component,
and no secret in any line.

Structured fields ride on the standard `extra=` of a logging call (`log.info("...", extra={"run_id":
...})`); both formats print them as fields of their own, so an operator can filter a run's lines
by `run_id=` in text or `.run_id` in JSON. Masking is a last line of defence: no code path logs a
token or a password on purpose, but an exception text quoting a URL or a header would.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Mapping
from typing import Any, Literal

LogFormat = Literal["text", "json"]

# What every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}

_SECRETS = [
    (re.compile(r"(?i)(bearer\s+)[^\s'\",;]+"), r"\1***"),
    (re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)(?!bearer\b)[^\s'\",;]+"), r"\1***"),
    (re.compile(r"(?i)((?:password|passwd|token)['\"]?\s*[:=]\s*['\"]?)[^\s'\",;&]+"), r"\1***"),
    (re.compile(r"(://[^/:@\s]+:)[^@/\s]+@"), r"\1***@"),  # scheme://user:password@host
]


# Every pattern above needs one of these words: one scan finds the few texts worth the four
# substitutions (the journal writes some ten fields a line, thousands of lines a second).
_MAYBE_SECRET = re.compile(r"(?i)bearer|authorization|passw|token|://")


def mask_secrets(text: str) -> str:
    if _MAYBE_SECRET.search(text) is None:
        return text
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


def _masked_field(value: Any) -> str:
    """A field as text, masked; numbers cannot hold a secret and skip the scan."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return mask_secrets(str(value))


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields a call added with `extra=`."""
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


_last_second: tuple[int, str] = (-1, "")  # (a second, its text): a burst of lines shares its seconds


def _timestamp(record: logging.LogRecord) -> str:
    """UTC, to the millisecond (truncated): 2026-11-28T15:04:05.123Z."""
    global _last_second
    second, millisecond = divmod(int(record.created * 1000), 1000)
    known, text = _last_second
    if second != known:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _last_second = (second, text)
    return f"{text}.{millisecond:03d}Z"


_NEEDS_QUOTES = re.compile(r'[ "=\n\t]')
_quoted = json.encoder.encode_basestring  # type: ignore[attr-defined]  # json.dumps(text, ensure_ascii=False), in C


def _text_value(value: Any) -> str:
    text = str(value)
    if not text or _NEEDS_QUOTES.search(text) is not None:
        return str(_quoted(text))
    return text


class KeyValueFormatter(logging.Formatter):
    """`ts=… level=INFO logger=… msg="…" run_id=… …`: grep-able, and still readable."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [f"ts={_timestamp(record)}", f"level={record.levelname}", f"logger={record.name}",
                 f"msg={_text_value(mask_secrets(record.getMessage()))}"]
        parts += [f"{key}={_text_value(_masked_field(value))}" for key, value in fields_of(record).items()]
        if record.exc_info:
            parts.append(f"exc={_text_value(mask_secrets(self.formatException(record.exc_info)))}")
        return " ".join(parts)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, the `extra=` fields, exc if any."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {"ts": _timestamp(record), "level": record.levelname, "logger": record.name,
                                "msg": mask_secrets(record.getMessage())}
        for key, value in fields_of(record).items():
            line[key] = value if isinstance(value, int | float | bool) or value is None else mask_secrets(str(value))
        if record.exc_info:
            line["exc"] = mask_secrets(self.formatException(record.exc_info))
        return json.dumps(line, ensure_ascii=False)


def configure(log_format: LogFormat = "text", levels: Mapping[str, str] | None = None, verbose: bool = False) -> None:
    """Replaces the root handler: one stream to stderr in the chosen format, then the levels per
    component (`{"execgw.server.ib": "DEBUG"}`), a bad level name refused with ValueError."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else KeyValueFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    # What neither format prints, not gathered for every line (the logging HOWTO's "Optimization"):
    # the caller's file and line (a walk up the stack), thread, process and multiprocessing names.
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    # ibapi logs every message it sends and receives at INFO: kept for --verbose only.
    logging.getLogger("ibapi").setLevel(logging.DEBUG if verbose else logging.WARNING)
    for name, level in (levels or {}).items():
        value = logging.getLevelName(level.strip().upper())
        if not isinstance(value, int):
            raise ValueError(f"log level for {name!r}: {level!r} is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        logging.getLogger(name).setLevel(value)
