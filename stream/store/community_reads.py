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
                pipe.hgetall(self._keys.partition(p).community_last)
                pipe.hgetall(self._keys.partition(p).community_events)
            replies = await pipe.execute()
        last: dict[str, int] = {}
        events: dict[str, int] = {}
        for raw_last, raw_events in zip(replies[::2], replies[1::2], strict=True):
            for k, v in raw_last.items():
                last[text(k)] = max(last.get(text(k), 0), int(v))
            for k, v in raw_events.items():
                events[text(k)] = events.get(text(k), 0) + int(v)
        return CommunityActivity(last_activity=last, events=events)
