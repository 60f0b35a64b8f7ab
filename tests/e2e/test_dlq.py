"""esn-pulse dlq and dlq replay on the real stack: counts by reason, exactly once per replay run.

Dead letters come from a real worker's gate, or are written directly in the worker's format
(stream.topics.dlq_headers) where a test needs a record the gate would reject for a reason
that a config change lifts (bad_time) or a crash duplicated.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from typing import Any

import pytest

from stream import jsonutil
from stream.cli_errors import ExitCode
from stream.clients import new_producer
from stream.dlq import read_dead_letters
from stream.dlq_replay import REPLAY_OF
from stream.settings import Settings
from stream.store import RedisStore
from stream.topics import DLQ_TRUNCATED, TopicNames, dlq_headers
from tests.support import (
    REPO,
    EndOffsets,
    Oracle,
    eventually,
    keyed,
    produce_raw,
    read_topic,
    settings_env,
    wait_fully_applied,
)

pytestmark = pytest.mark.e2e


def esn(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stream.cli", *args],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )


def event(n: int, actor: str, when: str = "2026-06-01T08:00:00Z") -> dict[str, Any]:
    return {"id": f"e{n}", "type": "login", "actor": actor, "time": when}


async def write_dead_letters(
    settings: Settings,
    letters: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]],
    timestamp_ms: int | None = None,
) -> None:
    """Append (key, value, headers) records to the activity DLQ, as the worker writes them."""
    topic = TopicNames.from_settings(settings).activity_dlq
    producer = new_producer(settings, acks="all")
    await producer.start()
    try:
        for key, value, headers in letters:
            await producer.send_and_wait(
                topic, value, key=key, headers=headers, timestamp_ms=timestamp_ms
            )
    finally:
        await producer.stop()


async def end_total(settings: Settings, topic: str) -> int:
    """Records in a topic: the activity topic by its end offsets, a DLQ by reading it."""
    names = TopicNames.from_settings(settings)
    if topic in (names.activity_dlq, names.directory_dlq):
        return len([letter async for letter in read_dead_letters(settings, topic)])
    async with EndOffsets(settings, topic) as offsets:
        return sum((await offsets.get()).values())


def json_lines(text: str) -> list[dict[str, Any]]:
    return [jsonutil.loads(line) for line in text.splitlines() if line.strip()]


class TestWorkerDeadLettersAndReplay:
    async def test_summary_list_and_replay_exactly_once(
        self, settings: Settings, store: RedisStore, worker_factory: Any
    ) -> None:
        """A worker's dead letters are counted by reason, listed with their source, and one
        replay re-sends each source record once, even when the DLQ holds one twice."""
        names = TopicNames.from_settings(settings)
        good = [event(i, f"u{i % 5}") for i in range(30)]
        bad: list[tuple[bytes | None, bytes]] = [
            (b"u1", b"this is not json"),
            (b"u2", b"[1, 2]"),
            (b"u3", b'{"id":"x","type":"login","actor":"u3"}'),
            (b"someone-else", jsonutil.dumps(event(99, "u4"))),
            (None, b"\xff\xfe not utf-8"),
        ]
        records = keyed(good[:15]) + bad + keyed(good[15:])
        await produce_raw(settings, records)
        worker = await worker_factory().started()
        await wait_fully_applied(store, settings, 90, worker.check_alive)
        await Oracle.of(good).assert_matches(store)

        async def all_dead_lettered() -> bool:
            return await end_total(settings, names.activity_dlq) >= len(bad)

        await eventually(all_dead_lettered, 60, "5 dead letters", worker.check_alive)

        listed = esn(settings, "dlq", "--list", "--json", "--show-payload")
        assert 0 == listed.returncode, listed.stderr
        letters = json_lines(listed.stdout)
        # A worker may dead-letter a record twice (a fetch retried at startup): the same source.
        by_source = {tuple(letter["source"].values()): letter for letter in letters}
        held = len(letters)
        assert Counter(
            {"not_json": 2, "not_object": 1, "missing_field": 1, "key_mismatch": 1}
        ) == Counter(letter["reason"] for letter in by_source.values())
        # The source coordinates are where each bad record really is in the activity topic.
        activity = await read_topic(settings, names.activity, len(records))
        where = {(r.key, r.value): (r.partition, r.offset) for r in activity}
        for letter in by_source.values():
            key = letter["key"].encode() if letter["key"] is not None else None
            value = letter["value"].encode("utf-8", "backslashreplace")
            source = letter["source"]
            assert names.activity == source["topic"]
            if key is not None and b"\\x" not in value:
                assert where[key, value] == (source["partition"], source["offset"])

        summary = esn(settings, "dlq")
        assert 0 == summary.returncode, summary.stderr
        assert f"{held} dead letters in {names.activity_dlq} (5 distinct" in summary.stdout
        rows = {line.split()[0]: int(line.split()[1]) for line in summary.stdout.splitlines()[2:]}
        assert Counter(letter["reason"] for letter in letters) == rows

        # A crash between dead-lettering and the fence moving writes the same record again.
        first = await anext(read_dead_letters(settings, names.activity_dlq))
        await write_dead_letters(settings, [(first.key, first.value, list(first.headers))])
        before = await end_total(settings, names.activity)

        replay = esn(settings, "dlq", "replay")
        assert 0 == replay.returncode, replay.stderr
        assert f"read {held + 1} dead letters" in replay.stdout
        assert "replayed 5 to" in replay.stdout
        assert f"skipped {held + 1 - 5} duplicates" in replay.stdout
        assert 5 == await end_total(settings, names.activity) - before

        after = await read_topic(settings, names.activity, len(records) + 5)
        replayed = [r for r in after if r.headers and dict(r.headers).get(REPLAY_OF)]
        assert Counter(bad) == Counter((r.key, r.value) for r in replayed)
        for record in replayed:
            topic, partition, offset = dict(record.headers)[REPLAY_OF].decode().rsplit(":", 2)
            assert (names.activity, record.partition) == (topic, int(partition))
            assert where[record.key, record.value] == (int(partition), int(offset))

        # Still invalid: the worker's gate sends each back to the DLQ once more, with its reason.
        async def rejected_again() -> bool:
            return await end_total(settings, names.activity_dlq) >= held + 1 + 5

        await eventually(rejected_again, 60, "replayed records dead-lettered again")
        await wait_fully_applied(store, settings, 60, worker.check_alive)
        again = esn(settings, "dlq")
        assert "(10 distinct source records" in again.stdout, again.stdout
        await Oracle.of(good).assert_matches(store)


class TestReplayAfterAFix:
    async def test_replay_by_reason_folds_each_record_once(
        self, settings: Settings, store: RedisStore, worker_factory: Any
    ) -> None:
        """Dead letters the gate now accepts are folded exactly once; other reasons stay put."""
        names = TopicNames.from_settings(settings)
        fixed = [event(i, f"v{i % 3}", f"2026-06-0{1 + i % 5}T08:00:00Z") for i in range(12)]
        letters: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]] = [
            (
                e["actor"].encode(),
                jsonutil.dumps(e),
                dlq_headers("bad_time", "too far in the future", names.activity, 0, 100 + i),
            )
            for i, e in enumerate(fixed)
        ]
        letters.append(letters[3])  # dead-lettered twice
        letters.append(letters[7])
        letters.append(
            (b"v9", b"still not json", dlq_headers("not_json", "x", names.activity, 1, 5))
        )
        await write_dead_letters(settings, letters)
        worker = await worker_factory().started()

        dry = esn(settings, "dlq", "replay", "--reason", "bad_time", "--dry-run")
        assert 0 == dry.returncode, dry.stderr
        assert "would replay 12 to" in dry.stdout and "skipped 2 duplicates" in dry.stdout
        assert 0 == await end_total(settings, names.activity)

        replay = esn(settings, "dlq", "replay", "--reason", "bad_time")
        assert 0 == replay.returncode, replay.stderr
        assert "replayed 12 to" in replay.stdout, replay.stdout
        assert 12 == await end_total(settings, names.activity)
        await wait_fully_applied(store, settings, 90, worker.check_alive)
        await Oracle.of(fixed).assert_matches(store)

        missing = esn(settings, "dlq", "replay", "--reason", "bad_cloudevent")
        assert 0 == missing.returncode
        assert "none with reason bad_cloudevent; present: bad_time, not_json" in missing.stdout
        assert 12 == await end_total(settings, names.activity)


class TestDirectoryDeadLetters:
    async def test_directory_dead_letters_replay_into_the_directory(
        self, settings: Settings, store: RedisStore, worker_factory: Any
    ) -> None:
        """--directory reads esn.directory.v1.dlq and replays into the directory topic."""
        from stream.store import DirectoryStore

        names = TopicNames.from_settings(settings)
        profile = {
            "kind": "profile",
            "user_id": "d1",
            "status": "enabled",
            "created": "2026-01-05T08:00:00Z",
            "updated": "2026-01-05T08:00:00Z",
        }
        headers = dlq_headers("bad_time", "x", names.directory, 0, 4)
        producer = new_producer(settings, acks="all")
        await producer.start()
        try:
            for _ in range(2):  # dead-lettered twice
                await producer.send_and_wait(
                    names.directory_dlq, jsonutil.dumps(profile), key=b"d1", headers=headers
                )
        finally:
            await producer.stop()
        worker = await worker_factory().started()

        summary = esn(settings, "dlq", "--directory")
        assert f"2 dead letters in {names.directory_dlq} (1 distinct" in summary.stdout
        replay = esn(settings, "dlq", "replay", "--directory")
        assert f"replayed 1 to {names.directory}, skipped 1 duplicates" in replay.stdout
        assert 1 == await end_total(settings, names.directory)
        directory = DirectoryStore(store)

        async def folded() -> bool:
            return await directory.profile("d1") is not None

        await eventually(folded, 60, "replayed profile folded", worker.check_alive)


class TestSinceAndHeaders:
    async def test_since_selects_by_when_a_record_was_dead_lettered(
        self, settings: Settings
    ) -> None:
        """--since counts and replays only dead letters written at or after that time."""
        names = TopicNames.from_settings(settings)
        old_ms = int(time.time() * 1000) - 3 * 86_400_000
        old = [(b"a", b"old", dlq_headers("not_json", "x", names.activity, 0, i)) for i in range(3)]
        new = [
            (b"b", b"new", dlq_headers("bad_field", "y", names.activity, 1, i)) for i in range(2)
        ]
        await write_dead_letters(settings, list(old), timestamp_ms=old_ms)
        await write_dead_letters(settings, list(new))

        recent = esn(settings, "dlq", "--since", "1d")
        assert 0 == recent.returncode, recent.stderr
        assert f"2 dead letters in {names.activity_dlq}" in recent.stdout
        everything = esn(settings, "dlq", "--since", "2020-01-01")
        assert f"5 dead letters in {names.activity_dlq}" in everything.stdout

        replay = esn(settings, "dlq", "replay", "--since", "1d")
        assert "replayed 2 to" in replay.stdout, replay.stdout + replay.stderr
        assert 2 == await end_total(settings, names.activity)

    async def test_hostile_and_missing_headers_are_listed_safely(self, settings: Settings) -> None:
        """No headers reads as reason unknown; control characters never reach the terminal;
        the exception class of an internal_error is shown."""
        names = TopicNames.from_settings(settings)
        internal = dlq_headers("internal_error", "boom", names.activity, 2, 7, "OverflowError")
        hostile = dlq_headers("bad_field", "\x1b[2J\x1b]0;pwned\x07", names.activity, 0, 1)
        hostile[4] = (hostile[4][0], b"not-a-number")
        cut = dlq_headers("too_large", "value of 5000000 bytes", names.activity, 3, 9)
        cut.append((DLQ_TRUNCATED, b"value 5000000"))
        await write_dead_letters(
            settings,
            [(None, b"no headers at all", []), (b"k", b"v", internal), (b"\x1bk", b"v", hostile)],
        )
        await write_dead_letters(settings, [(b"big", b'{"id":"x","ty', cut)])

        listed = esn(settings, "dlq", "--list", "--show-payload")
        assert 0 == listed.returncode, listed.stderr
        assert "\x1b" not in listed.stdout and "\x07" not in listed.stdout
        lines = listed.stdout.splitlines()
        assert 4 == len(lines)
        order = ("too_large", "internal_error", "unknown")  # the rest: bad_field first
        lines.sort(key=lambda line: [word in line for word in order])
        assert "too_large [truncated: value 5000000]" in lines.pop()
        assert "(no source headers)  bad_field  \\x1b[2J\\x1b]0;pwned\\x07" in lines[0]
        assert "key=\\x1bk value=v" in lines[0]
        assert "(no source headers)  unknown" in lines[1]
        assert f"from {names.activity} 2:7  internal_error [OverflowError]  boom" in lines[2]
        as_json = json_lines(esn(settings, "dlq", "--list", "--json").stdout)
        by_reason = {doc["reason"]: doc for doc in as_json}
        assert {"unknown", "internal_error", "bad_field", "too_large"} == set(by_reason)
        assert "OverflowError" == by_reason["internal_error"]["exception"]
        assert {"topic": names.activity, "partition": 2, "offset": 7} == by_reason[
            "internal_error"
        ]["source"]
        assert "key" not in by_reason["internal_error"], "payloads only on request"

        # Records without source headers cannot be deduplicated: each is its own record. A cut
        # one is not the producer's record: it is not re-sent.
        replay = esn(settings, "dlq", "replay")
        assert "replayed 3 to" in replay.stdout, replay.stdout + replay.stderr
        assert "and 1 truncated" in replay.stdout
        assert 3 == await end_total(settings, names.activity)


class TestReadStopsAtTheStartEnd:
    async def test_records_written_during_a_read_are_not_read(self, settings: Settings) -> None:
        """The read ends at the end offsets of its start: a replay cannot loop on its output."""
        names = TopicNames.from_settings(settings)
        letters = [(b"k", b"v%d" % i, dlq_headers("not_json", "x", names.activity, 0, i))
                   for i in range(3)]  # fmt: skip
        await write_dead_letters(settings, list(letters))
        read = []
        async for letter in read_dead_letters(settings, names.activity_dlq):
            if not read:
                await write_dead_letters(settings, list(letters))
            read.append(letter)
        assert [b"v0", b"v1", b"v2"] == sorted(letter.value or b"" for letter in read)
        assert 6 == await end_total(settings, names.activity_dlq)

    def test_replay_into_a_missing_topic_is_one_line(self, settings: Settings) -> None:
        """A DLQ replay under a prefix with no topics: exit 1 naming ESN_TOPIC_PREFIX."""
        other = settings.model_copy(update={"topic_prefix": settings.topic_prefix + "x."})
        result = esn(other, "dlq", "replay")
        assert ExitCode.FAILURE == result.returncode
        assert 1 == len(result.stderr.splitlines()) and "ESN_TOPIC_PREFIX" in result.stderr
