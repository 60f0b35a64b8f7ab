"""Everything that touches Redis: key layout, the fenced fold script and the read side."""

from stream.store.directory_store import DirectoryStore, Profile
from stream.store.keys import RedisKeys
from stream.store.redis_store import ApplyOutcome, RedisStore, UserState

__all__ = ["ApplyOutcome", "DirectoryStore", "Profile", "RedisKeys", "RedisStore", "UserState"]
