"""esn-pulse import into the running stack: the imported people end up active or flagged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from stream.settings import Settings
from stream.store import DirectoryStore, RedisStore
from tests.e2e.test_cli import esn
from tests.support import wait_fully_applied

pytestmark = pytest.mark.e2e
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "import"


class TestImportIntoTheStack:
    async def test_activity_streams_and_scim_to_kafka(
        self, settings: Settings, store: RedisStore, worker_factory: Any, tmp_path: Path
    ) -> None:
        """Directory and activity imported; the worker folds both; the summary counts them."""
        worker = await worker_factory().started()
        directory = esn(settings, "import", "--format", "scim", str(FIXTURES / "scim.json"),
                        "--to-kafka")  # fmt: skip
        assert directory.returncode == 0, directory.stderr
        assert json.loads(directory.stdout)["directory_records"] == 2
        skipped = tmp_path / "skipped.tsv"
        activity = esn(settings, "import", "--format", "activitystreams", str(FIXTURES),
                       "--to-kafka", "--skipped", str(skipped))  # fmt: skip
        # The directory holds the other formats' fixtures too: they are skipped, not fatal.
        assert activity.returncode == 0, activity.stderr
        summary = json.loads(activity.stdout)
        assert summary["activity_events"] >= 7
        lines = skipped.read_text().splitlines()
        assert len(lines) == sum(summary["skipped"].values())
        await wait_fully_applied(store, settings, 60, worker.check_alive)
        alice = await store.user_state("https://esn.example/users/alice")
        assert alice is not None and alice.counts == {"post": 1}

        profile = await DirectoryStore(store).profile("https://esn.example/users/gina")
        assert profile is not None and profile.status == "disabled"

    def test_dry_run_and_bad_usage(self, settings: Settings, tmp_path: Path) -> None:
        """--dry-run validates and writes nothing; csv without --map is refused."""
        dry = esn(settings, "import", "--format", "scim", str(FIXTURES / "scim.json"), "--dry-run")
        assert dry.returncode == 0 and json.loads(dry.stdout)["skipped"] == {"missing_user": 1}
        refused = esn(settings, "import", "--format", "csv", str(FIXTURES / "activity.csv"),
                      "--dry-run")  # fmt: skip
        assert refused.returncode == 2 and "--map" in refused.stderr
        out = tmp_path / "events.jsonl"
        written = esn(settings, "import", "--format", "csv", str(FIXTURES / "activity.csv"),
                      "--map", "time=When,actor=Who,type=What", "--out", str(out))  # fmt: skip
        assert written.returncode == 0, written.stderr
        assert len(out.read_text().splitlines()) == 3
