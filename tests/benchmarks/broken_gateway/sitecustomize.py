"""A gateway broken on purpose, for proving the soak can fail (tests/benchmarks/test_soak.py).

Python imports `sitecustomize` at start-up from any folder on PYTHONPATH; the test puts this
folder there for the soak and the `execgw serve` processes it starts, with
$EXECGW_SOAK_BREAK naming the bug. Without that variable it changes nothing.
"""

from __future__ import annotations

import os
import zlib

BREAK = os.environ.get("EXECGW_SOAK_BREAK", "")


def _picked(text: str, one_in: int) -> bool:
    return zlib.crc32(text.encode()) % one_in == 0


if BREAK == "resend_same_id":
    # Some orders go to IB a second time under the same IB order id: IB answers 103, creates
    # nothing, and its records of orders and executions look exactly as if nothing happened.
    from execgw.server.ib.session import IBSession

    _place = IBSession.place_market_order

    async def _place_twice(self, order, still_wanted=None):  # type: ignore[no-untyped-def]
        await _place(self, order, still_wanted)
        if _picked(order.order_ref, 3):
            await _place(self, order, still_wanted)

    IBSession.place_market_order = _place_twice  # type: ignore[method-assign]

elif BREAK == "drop_fill":
    # Some executions are never stored.
    from execgw.server.engine.recorder import Recorder

    _record = Recorder.record_fill

    def _record_some(self, execution):  # type: ignore[no-untyped-def]
        return None if _picked(execution.exec_id, 5) else _record(self, execution)

    Recorder.record_fill = _record_some  # type: ignore[method-assign]

elif BREAK:
    raise SystemExit(f"unknown EXECGW_SOAK_BREAK {BREAK!r}")
