"""Response models of /api/v1: FastAPI validates every answer against them and generates the
OpenAPI document (docs/api/openapi.json) from them, so the document cannot drift from the code."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Count = Annotated[int, Field(ge=0)]
Counts = dict[str, Count]
Number = int | float
TrendMetric = Literal[
    "dau",
    "wau",
    "mau",
    "mau28",
    "stickiness",
    "new",
    "returning",
    "participating",
    "contributing",
    "events",
]
CommunityState = Literal["all", "orphaned", "idle"]


class _Model(BaseModel):
    # "from" is a Python keyword: those fields carry an alias, and answers are built by alias.
    model_config = ConfigDict(populate_by_name=True)


class ErrorBody(_Model):
    status: int
    message: str
    param: str | None = Field(None, description="The query or path parameter at fault.")


class Error(_Model):
    """Every 4xx and 5xx answer."""

    error: ErrorBody


class TierRow(_Model):
    registered: Count
    active: Count
    participating: Count
    contributing: Count


class SummaryUsers(_Model):
    enabled: Count
    inactive: Counts
    never_active: Count


class Summary(_Model):
    """The headline figures now."""

    now: str = Field(description="RFC 3339 UTC")
    clock: Literal["wall", "event"]
    users: SummaryUsers
    active: Counts
    stickiness: float = Field(ge=0)
    tiers: dict[str, TierRow]
    communities: Counts
    departments: dict[str, Counts]
    min_group_size: int
    cached_seconds: float = Field(
        ge=0, description="Age of this answer: it may be reused for ESN_API_CACHE_SECONDS."
    )


class Point(_Model):
    date: str
    value: Number
    partial: bool = Field(
        description="The day is not over by the engine's clock (today): its figure still grows."
    )


class Trend(_Model):
    """A daily series."""

    metric: TrendMetric
    definition: str
    from_: str = Field(alias="from")
    to: str
    points: list[Point]


class GivenReceived(_Model):
    given: Count
    received: Count


class Roles(_Model):
    owner: list[str] = []
    member: list[str] = []
    follower: list[str] = []


class User(_Model):
    """Everything known about one user."""

    user_id: str
    first_seen: str | None
    last_seen: str | None
    events: Count
    counts: Counts
    likes: GivenReceived
    mentions: GivenReceived
    enabled: bool | None
    flags: list[str]
    department: str | None
    created: str | None
    communities: Roles


class InactiveRow(_Model):
    user_id: str
    flags: list[str]
    last_seen: str | None
    created: str | None
    department: str | None
    communities: Roles


class Inactive(_Model):
    """One page of flagged users, newest silence first."""

    total: Count
    offset: Count
    limit: int
    next_offset: int | None = Field(description="The offset of the next page; null on the last.")
    users: list[InactiveRow]


class Rhythm(_Model):
    """A person's usual rhythm before the silence (issue 16)."""

    active_days: Count = Field(description="Days with activity in the window.")
    window_days: int = Field(description="The window: the days up to the last activity.")
    usual_gap_days: float | None = Field(description="window_days / active_days")


class AtRiskRow(_Model):
    user_id: str
    at_risk_since: str | None
    rhythm: Rhythm
    last_seen: str | None
    department: str | None
    communities: Roles


class AtRisk(_Model):
    """One page of at-risk users, newest flag first."""

    total: Count
    offset: Count
    limit: int
    next_offset: int | None = Field(description="The offset of the next page; null on the last.")
    users: list[AtRiskRow]


class Community(_Model):
    community: str
    members_by_role: Counts
    people: Count
    active_members: Count
    health: float | None = Field(description="active_members / people")
    last_activity: str | None
    events: Count
    idle: bool
    orphaned: bool


class CommunityDetail(Community):
    """One community's health."""

    now: str


class Communities(_Model):
    """Every community's health."""

    now: str
    window_days: int
    counts: Counts
    communities: list[Community]


class MixRow(_Model):
    type: str
    object_type: str
    events: Count


class DayCounts(_Model):
    date: str
    counts: Counts


class Content(_Model):
    """Content mix over a range."""

    from_: str = Field(alias="from")
    to: str
    by_type_and_object: list[MixRow]
    by_day: list[DayCounts]


class TopItem(_Model):
    item: str = Field(description='"object_type:id"; "profile" for a person withheld (id null)')
    object_type: str
    id: str | None = Field(
        description="null for a profile (a person) unless the token holds the people scope; "
        "such an answer is then written to the access log"
    )
    interactions: Count


class TopItems(_Model):
    """Most-interacted-with items of a day or ISO week."""

    period: Literal["day", "week"]
    from_: str = Field(alias="from")
    to: str
    exact: bool = Field(description="false once a day of the period dropped items")
    error_bound: Count = Field(description="how much a listed count may be short (0 when exact)")
    items: list[TopItem]


class InitiativeRow(_Model):
    name: str
    start: str | None
    users: Count


class Initiatives(_Model):
    """The stored initiatives."""

    initiatives: list[InitiativeRow]


class Week(_Model):
    week: int = Field(ge=1)
    end: str | None
    reactivated: Count
    rate: float | None


class Group(_Model):
    users: Count
    inactive_at_start: Count
    weeks: list[Week]


class Initiative(_Model):
    """An initiative against everyone else, week by week."""

    name: str
    start: str | None
    now: str | None
    users: Count
    unknown_users: Count
    initiative: Group
    others: Group
