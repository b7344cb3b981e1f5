"""Each stored event encoded for the wire once, however many watchers it goes to.

Turning an event's stored payload into its protobuf message (~11 µs; ~37 µs with ParseDict,
before event_proto) is paid once per event here, not once per watcher.
A stored event never changes (a run's sequence numbers are unique and a correction is a new
event), so the message made for the first watcher serves every other one, live or replaying.
"""

from __future__ import annotations

from collections import OrderedDict

from execgw.server.api import convert
from execgw.server.engine.stored_event import StoredEvent
from execgw.v1 import execution_pb2 as pb

# Each message holds its own upb arena, about 1.7 KB for a fill: 20,000 of them were 32 MiB, a
# third of the soak's RSS growth. Sharing only needs the events watchers take at about the same
# time: live watchers take an event within milliseconds of its commit, and replays of a run
# read it in pages of 500. A watcher further behind encodes again (~10 µs an event).
CAPACITY = 1_024


class EncodedEvents:
    """The WatchRunResponse of recently sent events, least recently used dropped first. The
    messages are shared: nobody may change one after it is handed out."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._capacity = capacity
        self._messages: OrderedDict[tuple[str, int], pb.WatchRunResponse] = OrderedDict()
        self.encoded = 0  # events encoded (cache misses): how often the cost was actually paid

    def single(self, events: list[StoredEvent]) -> pb.WatchRunResponse:
        """The message of a stream that sends one event a message: `events` holds one."""
        return self.response(events[0])

    def batch(self, events: list[StoredEvent]) -> pb.WatchRunResponse:
        """One message carrying `events` (in WatchRunResponse.events). Made anew each time: a
        batch depends on what each watcher had waiting. Its events are copies of the kept ones."""
        message = pb.WatchRunResponse()
        message.events.events.extend([self.response(event).event for event in events])
        return message

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
