"""Read side of community activity: when each community was last named, and how often."""

from __future__ import annotations

from dataclasses import dataclass

from stream.store.redis_store import RedisStore, text


@dataclass(frozen=True)
class CommunityActivity:
    """Per community: time (ms) of the last event naming it, and events naming it."""

    last_activity: dict[str, int]
    events: dict[str, int]


class CommunityReads:
    """Community activity figures, merged over however many keys hold them."""

    def __init__(self, store: RedisStore) -> None:
        self._store = store
        self._client = store.client
        self._keys = store.keys

    async def community_figures(self) -> CommunityActivity:
        """Last activity and event counts of every community an event named, in one round trip.

        Each partition counts the events of its users: the latest time wins, counts add up.
        """
        async with self._client.pipeline(transaction=False) as pipe:
            for p in await self._store.partitions():
                pipe.hgetall(self._keys.partition(p).community_activity)
            replies = await pipe.execute()
        last: dict[str, int] = {}
        events: dict[str, int] = {}
        for reply in replies:
            for raw_name, raw_value in reply.items():
                name = text(raw_name)
                last_ms, _, count = text(raw_value).partition(",")  # "last_ms,events"
                last[name] = max(last.get(name, 0), int(last_ms))
                events[name] = events.get(name, 0) + int(count)
        return CommunityActivity(last_activity=last, events=events)
