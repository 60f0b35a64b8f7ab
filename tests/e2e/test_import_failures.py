"""``esn-pulse import`` on broken and huge inputs, as a user runs it: exit 1 and one line naming
the file and the place, the records before the break delivered, a checkpoint that resumes right,
and flat memory on a large single-line JSON document."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.imports import peak_rss, write_as2_document
from stream.cli_errors import ExitCode
from stream.settings import Settings
from stream.topics import TopicNames
from tests.e2e.test_cli import esn
from tests.support import REPO, EndOffsets, free_port, settings_env

pytestmark = pytest.mark.e2e
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "import"
#: Peak RSS allowed for a ~30 MB single-line document: a generous bound (streamed it peaks at
#: about 61 MiB, mostly the interpreter and the CLI's imports; read whole it took 219 MiB).
RSS_BOUND_MIB = 120


def cut_dump(tmp_path: Path) -> tuple[Path, int]:
    """The fixture Stack Exchange dump with Comments.xml cut inside its third row; the line."""
    dump = tmp_path / "dump"
    shutil.copytree(FIXTURES / "stackexchange", dump)
    text = (dump / "Comments.xml").read_text()
    cut = text.index('<row Id="102"') + 20
    (dump / "Comments.xml").write_text(text[:cut])
    return dump, text[:cut].count("\n") + 1


def last_line(stderr: str) -> str:
    return stderr.strip().splitlines()[-1]


class TestBrokenInput:
    def test_a_truncated_xml_dump(self, stack_settings: Settings, tmp_path: Path) -> None:
        """Exit 1 after the summary; one line names the file and the line; the records before
        the break were written; --keep-going reads the other files and still exits 1."""
        dump, line = cut_dump(tmp_path)
        out = tmp_path / "events.jsonl"
        done = esn(stack_settings, "import", "--format", "stackexchange", str(dump),
                   "--out", str(out))  # fmt: skip
        assert ExitCode.BAD_INPUT == done.returncode, done.stderr
        message = last_line(done.stderr)
        assert message.startswith(f"esn-pulse: {dump / 'Comments.xml'} is broken at line {line}, ")
        assert "XML not well-formed" in message and "2 records were written" in message
        assert "Traceback" not in done.stderr and "records read" in done.stderr
        summary = json.loads(done.stdout)
        assert [2] == [broken["records_before"] for broken in summary["broken_files"]]
        comments = [e for e in map(json.loads, out.read_text().splitlines())
                    if e["type"] == "comment"]  # fmt: skip
        assert ["se-comment-100", "se-comment-101"] == [e["id"] for e in comments]
        assert 0 == summary["ignored"].get("badge", 0), "Badges.xml comes after: not read"
        on = esn(stack_settings, "import", "--format", "stackexchange", str(dump), "--dry-run",
                 "--keep-going")  # fmt: skip
        assert ExitCode.BAD_INPUT == on.returncode
        assert 2 == json.loads(on.stdout)["ignored"]["badge"], "read past the broken file"

    def test_a_truncated_gzip_and_a_cut_json_document(
        self, stack_settings: Settings, tmp_path: Path
    ) -> None:
        """Slack analytics cut short, and an Activity Streams collection cut mid-record."""
        data = (FIXTURES / "slack" / "member-analytics-2026-06-10.json.gz").read_bytes()
        gz = tmp_path / "member-analytics-2026-06-10.json.gz"
        gz.write_bytes(data[: len(data) - 12])
        done = esn(stack_settings, "import", "--format", "slack-analytics", str(gz), "--dry-run")
        assert ExitCode.BAD_INPUT == done.returncode
        assert f"esn-pulse: {gz} is broken " in last_line(done.stderr)
        assert "compressed data cut short" in last_line(done.stderr)
        text = json.dumps(json.loads((FIXTURES / "activitystreams" /
                                      "as2-collection.json").read_text()))  # fmt: skip
        cut = tmp_path / "collection.json"
        cut.write_text(text[: len(text) - 30])
        done = esn(stack_settings, "import", "--format", "activitystreams", str(cut), "--dry-run")
        assert ExitCode.BAD_INPUT == done.returncode
        assert f"is broken at byte {len(text) - 30:,}: JSON cut short" in last_line(done.stderr)

    def test_the_checkpoint_resumes_after_the_fix(
        self, stack_settings: Settings, tmp_path: Path
    ) -> None:
        """Broken, then whole: the two runs write each record exactly once."""
        whole = "".join(json.dumps({"id": f"a{n}", "type": "Like", "actor": f"u{n}",
                                    "published": "2026-03-01T10:00:00Z"}) + "\n"
                        for n in range(20))  # fmt: skip
        source, out, checkpoint = tmp_path / "a.jsonl", tmp_path / "out.jsonl", tmp_path / "ckpt"
        source.write_text(whole[: whole.index('"a12"') + 3])
        args = ("import", "--format", "activitystreams", str(source), "--out", str(out),
                "--checkpoint", str(checkpoint))  # fmt: skip
        first = esn(stack_settings, *args)
        assert ExitCode.BAD_INPUT == first.returncode
        assert "the checkpoint resumes after them" in last_line(first.stderr)
        source.write_text(whole)
        second = esn(stack_settings, *args)
        assert 0 == second.returncode, second.stderr
        ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
        assert [f"a{n}" for n in range(20)] == ids

    def test_to_kafka_the_records_before_the_break_are_sent(
        self, settings: Settings, tmp_path: Path
    ) -> None:
        """On the real broker: exactly the records before the break are on the topic."""
        dump, _ = cut_dump(tmp_path)
        done = esn(settings, "import", "--format", "stackexchange", str(dump / "Comments.xml"),
                   "--to-kafka")  # fmt: skip
        assert ExitCode.BAD_INPUT == done.returncode, done.stderr
        assert "2 records were sent before it" in last_line(done.stderr)

        async def on_topic() -> int:
            async with EndOffsets(settings, TopicNames.from_settings(settings).activity) as ends:
                return sum((await ends.get()).values())

        assert 2 == asyncio.run(on_topic())

    def test_kafka_unreachable_is_one_line(self, stack_settings: Settings) -> None:
        """No broker at the address: exit 2, one line that says what to do, no traceback."""
        nowhere = stack_settings.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{free_port()}"})
        done = esn(nowhere, "import", "--format", "scim", str(FIXTURES / "scim" / "scim.json"),
                   "--to-kafka")  # fmt: skip
        assert ExitCode.UNREACHABLE == done.returncode
        assert "Traceback" not in done.stderr
        assert last_line(done.stderr).startswith("esn-pulse: Kafka unreachable at 127.0.0.1:")


class TestStreamingMemory:
    def test_a_large_single_line_document_in_flat_memory(
        self, stack_settings: Settings, tmp_path: Path
    ) -> None:
        """~30 MB of collection on one line: every item read, the process's peak RSS under a
        bound that reading it whole exceeds."""
        doc = tmp_path / "collection.json"
        items = write_as2_document(doc, 30)
        command = [sys.executable, "-m", "stream.cli", "import", "--format", "activitystreams",
                   str(doc), "--dry-run"]  # fmt: skip
        status, out, peak_mib = peak_rss(command, env=settings_env(stack_settings), cwd=REPO)
        assert 0 == status
        summary: dict[str, Any] = json.loads(out)
        assert (items, items) == (summary["records_read"], summary["activity_events"])
        assert peak_mib < RSS_BOUND_MIB, f"peak RSS {peak_mib:.0f} MiB"
