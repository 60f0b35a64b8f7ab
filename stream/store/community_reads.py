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
        self._client = store.client
        self._keys = store.keys

    async def community_figures(self) -> CommunityActivity:
        """Last activity and event counts of every community an event named, in one round trip."""
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.hgetall(self._keys.community_last)
            pipe.hgetall(self._keys.community_events)
            raw_last, raw_events = await pipe.execute()
        return CommunityActivity(
            last_activity={text(k): int(v) for k, v in raw_last.items()},
            events={text(k): int(v) for k, v in raw_events.items()},
        )
