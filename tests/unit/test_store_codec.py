"""The binary user record written by fold.lua and read back in Python, and the day bitmaps."""

from __future__ import annotations

import struct

from stream.events import COUNTED_TYPES
from stream.store.redis_store import UserState, bits_set, decode_user_record


def record(first: int, last: int, index: int, *counts: int) -> bytes:
    """A record as fold.lua's struct.pack('<I6I6I4B' .. 'I2' or 'I4' x n) writes it."""
    width = 4 if any(count > 65_535 for count in counts) else 2
    return (
        first.to_bytes(6, "little")
        + last.to_bytes(6, "little")
        + index.to_bytes(4, "little")
        + bytes([width])
        + struct.pack(f"<{len(counts)}{'H' if width == 2 else 'I'}", *counts)
    )


class TestUserRecord:
    def test_counts_by_slot_with_zero_slots_left_out(self) -> None:
        """A count per counted type in slot order; zero slots are not in the state."""
        counts = [0] * len(COUNTED_TYPES)
        counts[COUNTED_TYPES.index("view")] = 5
        counts[COUNTED_TYPES.index("other")] = 4_000_000_000
        state = decode_user_record("u1", record(1772614800250, 1772701200000, 7, *counts))
        expected = UserState(
            "u1", 1772614800250, 1772701200000, {"view": 5, "other": 4_000_000_000}
        )
        assert expected == state

    def test_trailing_slots_may_be_cut(self) -> None:
        """A record may end after its last non-zero count; the index is not a count."""
        assert UserState("u1", 10, 20, {"login": 3}) == decode_user_record(
            "u1", record(10, 20, 9, 3)
        )

    def test_small_counts_take_two_bytes(self) -> None:
        """Counts up to 65,535 are u16: 17 bytes of header, 2 a slot."""
        raw = record(10, 20, 3, 65_535, 0, 2)
        assert (23, UserState("u1", 10, 20, {"login": 65_535, "post": 2})) == (
            len(raw),
            decode_user_record("u1", raw),
        )

    def test_a_record_without_counts(self) -> None:
        """Seventeen bytes: first, last, index and width only."""
        assert UserState("u1", 10, 20, {}) == decode_user_record("u1", record(10, 20, 0))

    def test_counted_types_order_is_append_only(self) -> None:
        """Stored records depend on slot order: the first twelve slots never move."""
        assert (
            "login", "view", "post", "comment", "like", "mention",
            "follow", "join", "leave", "edit", "upload", "share", "other",
        ) == COUNTED_TYPES  # fmt: skip


class TestBitmap:
    def test_offsets_count_from_the_first_bytes_highest_bit(self) -> None:
        """Redis numbers bit 0 as the first byte's most significant bit (SETBIT, BITFIELD)."""
        assert [0, 7, 9, 23] == bits_set(bytes([0b1000_0001, 0b0100_0000, 0b0000_0001]))

    def test_no_bitmap_has_no_bits(self) -> None:
        """A day nobody was active on has no key: GET answers None."""
        assert [] == bits_set(None)
