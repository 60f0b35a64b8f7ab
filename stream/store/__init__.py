"""Everything that touches Redis: key layout, the fenced fold script and the read side."""

from stream.store.analytics_reads import AnalyticsReads, TopItems
from stream.store.community_reads import CommunityActivity, CommunityReads
from stream.store.directory_store import DirectoryStore, Profile
from stream.store.flag_reads import FlagReads
from stream.store.initiative_store import InitiativeStore
from stream.store.keys import LAYOUT, RedisKeys
from stream.store.redis_store import ApplyOutcome, ApplyResult, RedisStore, UserState
from stream.store.state_admin import StateAdmin
from stream.store.user_reads import UserReads

__all__ = [
    "LAYOUT",
    "ApplyOutcome",
    "ApplyResult",
    "DirectoryStore",
    "Profile",
    "RedisKeys",
    "RedisStore",
    "UserState",
]
__all__ += ["AnalyticsReads", "CommunityActivity", "CommunityReads", "FlagReads", "InitiativeStore"]
__all__ += ["StateAdmin", "TopItems", "UserReads"]
