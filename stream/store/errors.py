"""What a Redis call raises when Redis (one server or a cluster) cannot take it right now."""

from __future__ import annotations

from redis.exceptions import RedisClusterException, RedisError

#: Errors that mean "not now": the server or a cluster's master is away, failing over, loading.
#: A cluster client raises RedisClusterException (not a RedisError in redis-py) when a slot has
#: no master during a failover or no node answers its re-learning of the slots: a caller's
#: backoff takes it like a connection error.
REDIS_UNAVAILABLE: tuple[type[Exception], ...] = (RedisError, OSError, RedisClusterException)
