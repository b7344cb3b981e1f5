"""Each stored event encoded for the wire once, however many watchers it goes to.

Turning an event's stored payload into its protobuf message (`json_format.ParseDict`) costs
more than gRPC's own work to send it; with N watchers of a run it was done N times per event.
A stored event never changes (a run's sequence numbers are unique and a correction is a new
event), so the message made for the first watcher serves every other one, live or replaying.
"""

from __future__ import annotations

from collections import OrderedDict

from execgw.server.api import convert
from execgw.server.engine.stored_event import StoredEvent
from execgw.v1 import execution_pb2 as pb


class EncodedEvents:
    """The WatchRunResponse of recently sent events, least recently used dropped first. The
    messages are shared: nobody may change one after it is handed out."""

    def __init__(self, capacity: int = 20_000) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._capacity = capacity
        self._messages: OrderedDict[tuple[str, int], pb.WatchRunResponse] = OrderedDict()
        self.encoded = 0  # events encoded (cache misses): how often the cost was actually paid

    def response(self, event: StoredEvent) -> pb.WatchRunResponse:
        key = (event.run_id, event.sequence)
        messages = self._messages
        message = messages.get(key)
        if message is not None:
            messages.move_to_end(key)
            return message
        message = pb.WatchRunResponse(event=convert.event_to_proto(event))
        self.encoded += 1
        messages[key] = message
        if len(messages) > self._capacity:
            messages.popitem(last=False)
        return message
