"""Framing and field conversions."""

from __future__ import annotations

import pytest

from execgw.sim.wire import (
    API_PREFIX,
    FrameReader,
    ProtocolError,
    frame,
    parse_float,
    parse_handshake,
    parse_int,
    text,
)


def test_frame_is_length_prefixed_null_terminated_fields():
    assert frame([9, 1, 17]) == b"\x00\x00\x00\x079\x001\x0017\x00"


def test_field_text_follows_tws_conventions():
    assert [text(True), text(False), text(None), text(100.0), text(190.25), text(-1)] == [
        "1", "0", "", "100", "190.25", "-1"]


def test_reader_reassembles_messages_split_across_reads():
    data = frame([3, 10, "AAPL"]) + frame([4, 1, 10]) + frame([49, 1])
    reader = FrameReader()
    seen = []
    for i in range(len(data)):  # one byte at a time
        seen += reader.feed(data[i : i + 1])
    assert seen == [["3", "10", "AAPL"], ["4", "1", "10"], ["49", "1"]]


def test_reader_keeps_empty_fields():
    assert FrameReader().feed(frame([7, 3, 1, 0, "", "", "AAPL"])) == [["7", "3", "1", "0", "", "", "AAPL"]]


def test_reader_refuses_absurd_lengths():
    with pytest.raises(ProtocolError):
        FrameReader().feed(b"\x7f\xff\xff\xff")


def test_api_prefix_may_arrive_in_pieces():
    reader = FrameReader()
    reader.extend(b"AP")
    assert reader.take_prefix(API_PREFIX) is None
    reader.extend(b"I\0" + frame(["v100..157"]))
    assert reader.take_prefix(API_PREFIX) is True
    assert reader.feed(b"") == [["v100..157"]]
    other = FrameReader()
    other.extend(b"GET / HTTP/1.1")
    assert other.take_prefix(API_PREFIX) is False


@pytest.mark.parametrize(("field", "value"), [("10", 10), ("10.0", 10), ("", None), ("2147483647", None),
                                              (" -1 ", -1)])
def test_parse_int(field, value):
    assert parse_int(field) == value


def test_parse_int_refuses_fractions():
    with pytest.raises(ValueError):
        parse_int("10.5")


@pytest.mark.parametrize(("field", "value"), [("1.5", 1.5), ("", None), ("1.7976931348623157e+308", None),
                                              ("1.7976931348623157E308", None), ("0", 0.0)])
def test_parse_float(field, value):
    assert parse_float(field) == value


def test_parse_handshake():
    assert parse_handshake(["v100..157"]) == (100, 157, "")
    assert parse_handshake(["v157..178 +PACEAPI"]) == (157, 178, "+PACEAPI")
    assert parse_handshake(["v157"]) == (157, 157, "")
    with pytest.raises(ProtocolError):
        parse_handshake(["hello"])
