"""The packed user record written by fold.lua and read back in Python."""

from __future__ import annotations

from stream.events import COUNTED_TYPES
from stream.store.redis_store import UserState, decode_user_record


def test_decode_record_with_empty_zero_slots() -> None:
    """ "first,last,count..." in decimal; empty slots are zero and are left out."""
    counts = [""] * len(COUNTED_TYPES)
    counts[COUNTED_TYPES.index("view")] = "5"
    counts[COUNTED_TYPES.index("other")] = "40"
    record = ",".join(["1772614800250", "1772701200000", *counts])
    state = decode_user_record("u1", record.encode())
    assert UserState("u1", 1772614800250, 1772701200000, {"view": 5, "other": 40}) == state


def test_trailing_slots_may_be_cut() -> None:
    """A record that ends after the last non-zero count is complete."""
    state = decode_user_record("u1", b"10,20,3")
    assert UserState("u1", 10, 20, {"login": 3}) == state


def test_counted_types_order_is_append_only() -> None:
    """Stored records depend on slot order: the first twelve slots never move."""
    assert (
        "login", "view", "post", "comment", "like", "mention",
        "follow", "join", "leave", "edit", "upload", "share", "other",
    ) == COUNTED_TYPES  # fmt: skip
