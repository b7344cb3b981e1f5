"""TWS socket framing and field conversions, shared by every message the simulator reads or writes.

A message is a 4-byte big-endian length followed by ASCII fields, each terminated by ``\\0``.
The handshake that opens a connection is the one exception: ``API\\0`` comes unframed before
the first framed message.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

SERVER_VERSION = 157
"""The only version both ibapi 9.81 (v100..157) and ib_async 2.1 (v157..178) accept."""

API_PREFIX = b"API\0"
UNSET_INTEGER = 2**31 - 1
UNSET_DOUBLE = 1.7976931348623157e308
UNSET_DOUBLE_TEXT = "1.7976931348623157E308"
"""How TWS writes an unset double where a field must carry one (commission reports)."""

_LENGTH = struct.Struct(">I")
MAX_MESSAGE_BYTES = 0xFFFFFF
"""TWS's own ceiling on one message; anything larger means the peer is not speaking the protocol."""


class ProtocolError(Exception):
    """The peer sent bytes that cannot be a TWS API message."""


def text(value: object) -> str:
    """One field's text as TWS writes it: bools as 0/1, None as empty, whole floats without ``.0``."""
    kind = type(value)
    if kind is str:  # the common cases first: this runs for every field of every message
        return value  # type: ignore[return-value]
    if kind is int:
        return str(value)
    if kind is float:
        number: float = value  # type: ignore[assignment]
        return str(int(number)) if number.is_integer() and abs(number) < 1e15 else repr(number)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return text(float(value))
    return str(value)


def frame(fields: Iterable[object]) -> bytes:
    """A framed message from its fields (the message id first)."""
    body = "".join(text(f) + "\0" for f in fields).encode("ascii", "backslashreplace")
    return _LENGTH.pack(len(body)) + body


def frame_texts(fields: list[str]) -> bytes:
    """Like :func:`frame` for fields already converted to text: the hot path of a flood."""
    body = ("\0".join(fields) + "\0").encode("ascii", "backslashreplace")
    return _LENGTH.pack(len(body)) + body


class FrameReader:
    """Splits a byte stream into messages, each a list of field strings."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[list[str]]:
        self._buffer += data
        messages: list[list[str]] = []
        while len(self._buffer) >= 4:
            (size,) = _LENGTH.unpack_from(self._buffer)
            if size > MAX_MESSAGE_BYTES:
                raise ProtocolError(f"message of {size} bytes announced")
            end = 4 + size
            if len(self._buffer) < end:
                break
            body = bytes(self._buffer[4:end])
            del self._buffer[:end]
            fields = body.decode("latin-1").split("\0")
            if fields and fields[-1] == "":
                fields.pop()  # the terminator of the last field, not a field
            messages.append(fields)
        return messages

    def extend(self, data: bytes) -> None:
        """Buffer bytes without splitting them: the unframed ``API\\0`` comes first."""
        self._buffer += data

    def take_prefix(self, prefix: bytes) -> bool | None:
        """Consume ``prefix`` if the stream starts with it; None while too few bytes have arrived."""
        if len(self._buffer) < len(prefix):
            return None if prefix.startswith(bytes(self._buffer)) else False
        if self._buffer.startswith(prefix):
            del self._buffer[: len(prefix)]
            return True
        return False


def parse_int(field: str) -> int | None:
    """An integer field; ``""`` and IB's unset value are None, ``"10.0"`` is 10 (ib_async sends floats)."""
    field = field.strip()
    if not field:
        return None
    try:
        value = int(field)
    except ValueError:
        number = float(field)
        if number >= UNSET_DOUBLE or not number.is_integer():
            raise ValueError(f"not an integer: {field!r}") from None
        value = int(number)
    return None if value == UNSET_INTEGER else value


def parse_float(field: str) -> float | None:
    """A double field; ``""`` and IB's unset value (any spelling of DBL_MAX) are None."""
    field = field.strip()
    if not field:
        return None
    value = float(field)
    return None if value >= UNSET_DOUBLE else value


def parse_bool(field: str) -> bool:
    return bool(parse_int(field) or 0)


def parse_handshake(message: list[str]) -> tuple[int, int, str]:
    """(min version, max version, connect options) from the ``v100..157 [options]`` message."""
    if len(message) != 1 or not message[0].startswith("v"):
        raise ProtocolError(f"not a version handshake: {message!r}")
    spec, _, options = message[0][1:].partition(" ")
    low, sep, high = spec.partition("..")
    try:
        return int(low), int(high if sep else low), options
    except ValueError:
        raise ProtocolError(f"unreadable version range: {message[0]!r}") from None
