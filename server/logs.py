"""The gateway's log output: key=value text (the default) or JSON lines, a level per component,
and no secret in any line.

Structured fields ride on the standard `extra=` of a logging call (`log.info("...", extra={"run_id":
...})`); both formats print them as fields of their own, so an operator can filter a run's lines
by `run_id=` in text or `.run_id` in JSON. Masking is a last line of defence: no code path logs a
token or a password on purpose, but an exception text quoting a URL or a header would.
"""

from __future__ import annotations

import atexit
import json
import logging
import logging.handlers
import queue
import re
import sys
import threading
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


RENDERED_KEPT = 4096
_rendered: dict[str, str] = {}  # a field's text → as written: masked, quoted if need be


def _field_text(value: Any) -> str:
    """A field as written: numbers as they are (they hold no secret and need no quotes), texts
    masked and quoted. The journal repeats most of its texts line after line (run and order
    ids, accounts, kinds), so each is rendered once and kept (up to RENDERED_KEPT, then
    forgotten all at once)."""
    kind = type(value)
    if kind is int or kind is float:
        return str(value)
    text = value if kind is str else str(value)
    rendered = _rendered.get(text)
    if rendered is None:
        rendered = _text_value(mask_secrets(text))
        if len(_rendered) >= RENDERED_KEPT:
            _rendered.clear()
        _rendered[text] = rendered
    return rendered


class KeyValueFormatter(logging.Formatter):
    """`ts=… level=INFO logger=… msg="…" run_id=… …`: grep-able, and still readable."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [f"ts={_timestamp(record)}", f"level={record.levelname}", f"logger={record.name}",
                 f"msg={_text_value(mask_secrets(record.getMessage()))}"]
        parts += [f"{key}={_field_text(value)}" for key, value in fields_of(record).items()]
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


QUEUED_LINES = 100_000  # lines waiting for stderr before new ones are dropped (and counted)
LINES_PER_WRITE = 1_000  # the most lines the writer thread takes off the queue for one write


class _Enqueue(logging.handlers.QueueHandler):
    """Hands records to the writer thread (`_Writer`) instead of formatting and writing them on
    the caller's thread, the event loop above all: a journal line is some 25 µs of formatting,
    and a stderr that blocks (a full pipe) would otherwise stop the loop, and trading with it.

    The message is rendered here, at the call (its arguments may change after it); the rest of
    the record (fields, exception) is formatted by the writer thread, in this same process. The
    queue is a `SimpleQueue` (C, no condition variable: a put is a fraction of a microsecond);
    its bound is kept here. If stderr falls `bound` lines behind, new lines are dropped and a
    line says how many."""

    def __init__(self, lines: queue.SimpleQueue[logging.LogRecord | None], bound: int) -> None:
        super().__init__(lines)
        self.bound = bound
        self.dropped = 0

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record.msg = record.getMessage()
        record.args = None
        return record

    def enqueue(self, record: logging.LogRecord) -> None:
        lines = self.queue
        if lines.qsize() >= self.bound:
            self.dropped += 1
            return
        if self.dropped:
            lines.put_nowait(logging.makeLogRecord({
                "name": __name__, "levelno": logging.WARNING, "levelname": "WARNING",
                "msg": f"{self.dropped} log lines dropped: stderr did not keep up"}))
            self.dropped = 0
        lines.put_nowait(record)


class _Writer:
    """The thread that formats queued records and writes them: everything waiting (up to
    LINES_PER_WRITE) in one write and one flush, not a write, a flush and a lock per line."""

    def __init__(self, lines: queue.SimpleQueue[logging.LogRecord | None], handler: logging.StreamHandler[Any]) -> None:
        self._lines = lines
        self._handler = handler
        self._thread = threading.Thread(target=self._run, name="execgw-log-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Writes every line queued before this call, then ends the thread."""
        self._lines.put(None)
        self._thread.join()

    def _run(self) -> None:
        lines, handler = self._lines, self._handler
        while True:
            records = [lines.get()]
            while len(records) < LINES_PER_WRITE:
                try:
                    records.append(lines.get_nowait())
                except queue.Empty:
                    break
            texts: list[str] = []
            last = False
            for record in records:
                if record is None:
                    last = True  # stop() puts nothing after it
                    break
                try:
                    texts.append(handler.format(record))
                except Exception:
                    handler.handleError(record)
            if texts:
                try:
                    handler.stream.write("\n".join(texts) + "\n")
                    handler.flush()
                except Exception:
                    handler.handleError(records[0])  # type: ignore[arg-type]  # prints why, to stderr
            if last:
                return


_listener: _Writer | None = None


def stop() -> None:
    """Writes every line still queued, then stops the writer thread (at exit, and before
    `configure` replaces it)."""
    global _listener
    if _listener is not None:
        _listener.stop()
        _listener = None


def configure(log_format: LogFormat = "text", levels: Mapping[str, str] | None = None, verbose: bool = False) -> None:
    """Replaces the root handler: one stream to stderr in the chosen format, written by a thread
    of its own (_Enqueue), then the levels per component (`{"execgw.server.ib": "DEBUG"}`), a bad
    level name refused with ValueError."""
    global _listener
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else KeyValueFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    stop()
    lines: queue.SimpleQueue[logging.LogRecord | None] = queue.SimpleQueue()
    _listener = _Writer(lines, handler)
    _listener.start()
    root.addHandler(_Enqueue(lines, QUEUED_LINES))
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


atexit.register(stop)
