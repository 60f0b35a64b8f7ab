"""The scaling bench's pure figures: input counts, key attribution, fleet timing, sizing and the
sizing page's table."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

import pytest

from bench.memory_figures import category_of, key_kind, memory_figures
from bench.redis_nodes import _match
from bench.scaling_report import ratio
from bench.sizing import (
    SizingBasis,
    human_bytes,
    partitions_for,
    redis_bytes,
    sizing_row,
    workers_for,
)
from bench.worker_fleet import FleetRun, all_applied, fleet_settings, throughput
from bench.workload import input_figures
from stream.settings import Settings


class TestInputFigures:
    def test_user_days_are_distinct_users_per_utc_day(self) -> None:
        """A user's two events of one UTC day are one user-day, whatever their offsets say."""
        figures = input_figures(
            [
                ("u1", "2026-01-05T23:30:00+00:00"),
                # 2026-01-06 00:30 local in +01:00 is still 2026-01-05 in UTC.
                ("u1", "2026-01-06T00:30:00+01:00"),
                ("u1", "2026-01-06T09:00:00+00:00"),
                ("u2", "2026-01-07T09:00:00Z"),
            ]
        )
        assert (4, 2, 3, 3) == (figures.events, figures.users, figures.user_days, figures.days)

    def test_busiest_hour_and_active_share(self) -> None:
        """The busiest UTC hour over the mean hour, and user-days over users times days."""
        times = [("u1", "2026-01-05T10:05:00Z"), ("u2", "2026-01-05T10:55:00Z")]
        times.append(("u1", "2026-01-06T11:00:00Z"))
        figures = input_figures(times)
        assert 2 == figures.busiest_hour_events
        # 3 events over 2 days of 24 hours: the mean hour holds 1/16 of an event.
        assert 2 * 48 / 3 == pytest.approx(figures.peak_hour_factor)
        assert 3 / 4 == pytest.approx(figures.daily_active_share)

    def test_empty_input(self) -> None:
        """No events: zeros, no division by zero."""
        figures = input_figures([])
        assert (0, 0, 0.0, 0.0) == (
            figures.events,
            figures.days,
            figures.peak_hour_factor,
            figures.daily_active_share,
        )


class TestKeyAttribution:
    @pytest.mark.parametrize(
        ("key", "kind"),
        [
            ("esn:day:2026-01-05", "day"),
            ("esn:{p3}:day:2026-01-05", "day"),
            ("esn:{p11}:u1:17", "u1"),
            ("esn:u1:17", "u1"),
            ("esn:buf:4", "buf"),
            ("esn:{p4}:buf", "buf"),
            ("esn:{c}:outbox", "outbox"),
            ("esn:{p0}:stats:m:20458", "stats"),
            ("esn:deployment", "deployment"),
        ],
    )
    def test_kind_ignores_prefix_and_hash_tag(self, key: str, kind: str) -> None:
        """The kind is the first name segment, in the single-slot and hash-tagged layouts."""
        assert kind == key_kind(key, "esn:")

    def test_categories(self) -> None:
        """Daily sets grow with user-days, aggregates with days, buffers with traffic."""
        assert ["user-day", "user-day", "per-day", "per-day", "transient", "per-user"] == [
            category_of(kind) for kind in ("day", "tday", "hll", "top", "buf", "u1")
        ]

    def test_figures_divide_each_category_by_what_it_grows_with(self) -> None:
        """Per user over users, per user-day over user-days, per day over days, per event."""
        usage = {
            "b:{p0}:u1:0": 600,
            "b:{p1}:last:a": 400,
            "b:{p0}:day:2026-01-05": 300,
            "b:{p1}:tday:p:2026-01-05": 100,
            "b:{p0}:hll:a:20458": 1000,
            "b:{p0}:buf": 50,
        }
        figures = memory_figures(usage, "b:", 1000, 5000, users=10, user_days=20, days=2, events=25)
        assert 4000 == figures.used_memory_delta
        assert 2450 == figures.key_bytes
        assert 100.0 == figures.per_user
        assert 20.0 == figures.per_user_day
        assert 500.0 == figures.per_day
        assert 2.0 == figures.transient_per_event
        assert 245.0 == figures.all_per_user
        assert 400.0 == figures.used_per_user
        assert 6 == figures.keys


class TestRedisNodes:
    def test_scan_pattern_covers_hash_tagged_keys_and_escapes_globs(self) -> None:
        """``esn:*`` matches ``esn:{p3}:...``; a glob character in the prefix is literal."""
        assert "esn:*" == _match("esn:")
        assert fnmatch.fnmatchcase("esn:{p3}:day:2026-01-05", _match("esn:"))
        assert "we\\*ird\\?:*" == _match("we*ird?:")


class TestFleet:
    def test_all_applied_needs_every_non_empty_partition_at_its_end(self) -> None:
        """A fence at end - 1 is done; an empty partition needs no fence."""
        ends = {0: 10, 1: 5, 2: 0}
        assert all_applied({0: 9, 1: 4, 2: -1}, ends)
        assert not all_applied({0: 9, 1: 3, 2: -1}, ends)
        assert not all_applied({0: 9}, ends)

    def test_each_worker_has_its_own_web_port(self) -> None:
        """Same deployment, one web port per worker; a port count that does not match fails."""
        fleet = fleet_settings(Settings(), 3, [7001, 7002, 7003])
        assert [7001, 7002, 7003] == [member.web_port for member in fleet]
        assert 1 == len({(m.redis_prefix, m.app_id, m.redis_url) for m in fleet})
        with pytest.raises(ValueError, match="3 workers need 3 web ports"):
            fleet_settings(Settings(), 3, [7001])

    def test_throughputs(self) -> None:
        """First-to-last and settled rates; nothing timed is 0, not a division error."""
        run = FleetRun(2, 10_000, 2.0, 9.0, 6_000, 1.5)
        assert (5000.0, 4000.0) == (run.per_second, run.steady_per_second)
        assert 0.0 == throughput(100, 0.0)
        assert (1.5, 0.0) == (ratio(3.0, 2.0), ratio(3.0, 0.0))


class TestSizing:
    BASIS = SizingBasis(
        per_user=300.0,
        per_user_day=100.0,
        per_day=1000.0,
        worker_rate=10_000.0,
        daily_active_share=0.5,
        peak_hour_factor=3.0,
    )

    def test_memory_sums_users_user_days_and_days_with_headroom(self) -> None:
        """(users x 300 + users x 0.5 x 35 days x 100 + 400 days x 1000) x 2."""
        assert (1000 * 300 + 1000 * 0.5 * 35 * 100 + 400 * 1000) * 2 == redis_bytes(
            1000, self.BASIS
        )

    def test_per_day_aggregates_scale_with_partitions(self) -> None:
        """24 partitions keep twice the per-day aggregates the measured 12 did."""
        assert 400 * 1000 * 2 == redis_bytes(0, self.BASIS, 24) - redis_bytes(0, self.BASIS, 12)

    def test_workers_cover_the_busiest_hour_twice(self) -> None:
        """86.4M events a day: 1,000/s mean, 3,000/s at peak, 6,000/s with headroom: 1 worker,
        but never fewer than 2; five times that needs 3."""
        assert 2 == workers_for(86_400_000, self.BASIS)
        assert 3 == workers_for(5 * 86_400_000, self.BASIS)
        assert 1 == workers_for(1, SizingBasis(1, 1, 1, 1, 1, 1, min_workers=1))
        with pytest.raises(ValueError, match="no measured worker rate"):
            workers_for(1, SizingBasis(1, 1, 1, 0, 1, 1))

    def test_partitions_are_multiples_of_twelve_with_room_to_grow(self) -> None:
        """At least 12, four per worker, rounded up to a multiple of 12."""
        assert [12, 12, 24, 48] == [partitions_for(w, self.BASIS) for w in (1, 3, 4, 10)]

    def test_row(self) -> None:
        """A row holds its inputs and the derived partitions, workers and memory."""
        row = sizing_row(1000, 86_400_000 * 5, self.BASIS)
        assert (1000, 432_000_000, 12, 3) == (
            row.users,
            row.events_per_day,
            row.partitions,
            row.workers,
        )
        assert redis_bytes(1000, self.BASIS) == row.redis_bytes

    @pytest.mark.parametrize(
        ("size", "text"),
        [
            (512, "512 B"),
            (1536, "1.5 KiB"),
            (200 * 1024**2, "200 MiB"),
            (3.25 * 1024**3, "3.25 GiB"),
        ],
    )
    def test_human_bytes(self, size: float, text: str) -> None:
        """Binary units, up to three significant digits."""
        assert text == human_bytes(size)


class TestSizingDoc:
    """docs/operations/sizing.md's table is what bench.sizing derives from the page's figures."""

    PAGE = Path(__file__).resolve().parents[2] / "docs" / "operations" / "sizing.md"

    def figure(self, text: str, pattern: str) -> float:
        found = re.search(pattern, text)
        assert found, f"sizing.md no longer states {pattern!r}"
        return float(found.group(1).replace(",", ""))

    def test_table_follows_from_the_stated_figures_and_rules(self) -> None:
        """Edit a figure or a rule without the table (or the other way round) and this fails."""
        text = self.PAGE.read_text()
        basis = SizingBasis(
            per_user=self.figure(text, r"\| per user \| ([\d,.]+) bytes \|"),
            per_user_day=self.figure(text, r"\| per user-day \| ([\d,.]+) bytes \|"),
            per_day=self.figure(text, r"\| per day \| ([\d.]+) MiB \|") * 1024**2,
            worker_rate=self.figure(text, r"\| one worker \| ([\d,]+) events/s \|"),
            daily_active_share=self.figure(text, r"\u00d7 (\d+)% active a day") / 100,
            peak_hour_factor=self.figure(text, r"\(([\d.]+) \u00d7 the day's mean"),
        )
        rows = re.findall(r"^\| ([\d,]+) \| ([\d,]+) \| (\d+) \| (\d+) \| ([^|]+) \|$", text, re.M)
        assert len(rows) >= 5
        for users, events, partitions, workers, memory in rows:
            row = sizing_row(int(users.replace(",", "")), int(events.replace(",", "")), basis)
            assert (row.partitions, row.workers, human_bytes(row.redis_bytes)) == (
                int(partitions),
                int(workers),
                memory.strip(),
            ), f"the row of {users} users"
