"""What a Redis call raises when Redis (one server or a cluster) cannot take it right now."""

from __future__ import annotations

from redis.exceptions import RedisError, SlotNotCoveredError

#: Errors that mean "not now": the server or a cluster's master is away, failing over, loading.
#: A cluster whose slot has no master during a failover raises SlotNotCoveredError, which is
#: not a RedisError (redis-py); a caller's backoff takes it like a connection error.
REDIS_UNAVAILABLE: tuple[type[Exception], ...] = (RedisError, OSError, SlotNotCoveredError)
