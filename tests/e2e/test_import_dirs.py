"""``esn-pulse import DIR`` as a user runs it: only the format's files at the top of DIR, a folder
without any refused, locations by full path, and exit 1 when nothing was mapped."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from stream.cli_errors import ExitCode
from stream.settings import Settings
from tests.e2e.test_cli_errors import one_line_error, run_cli
from tests.support import free_port

pytestmark = pytest.mark.e2e
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "import"


@pytest.fixture
def nowhere(tmp_path: Path) -> Settings:
    """No server is needed (--dry-run): settings that point at ports nobody listens on."""
    return Settings(kafka_bootstrap=f"127.0.0.1:{free_port()}",
                    redis_url=f"redis://127.0.0.1:{free_port()}/0",
                    state_dir=tmp_path / "state")  # fmt: skip


def dump_in(folder: Path) -> Path:
    """The fixture Stack Exchange dump copied into ``folder``."""
    shutil.copytree(FIXTURES / "stackexchange", folder)
    return folder


class TestImportDirectories:
    def test_subfolders_are_not_read(self, nowhere: Settings, tmp_path: Path) -> None:
        """A shared folder with another site's dump below it: only the top one is imported, and
        the summary says what it left out."""
        top = dump_in(tmp_path / "shared")
        dump_in(top / "other-site")
        (top / "README.txt").write_text("not a dump file")
        done = run_cli(nowhere, "import", "--format", "stackexchange", str(top), "--dry-run")
        assert 0 == done.returncode, done.stderr
        alone = run_cli(nowhere, "import", "--format", "stackexchange",
                        str(FIXTURES / "stackexchange"), "--dry-run")  # fmt: skip
        assert json.loads(alone.stdout)["records_read"] == json.loads(done.stdout)["records_read"]
        assert "not read (not stackexchange files, or subfolders): README.txt, other-site/" in (
            done.stderr
        )
        assert "Traceback" not in done.stderr

    @pytest.mark.parametrize("content", ["nothing", "other files", "a dump one level down"])
    def test_a_folder_without_the_formats_files_is_refused(
        self, nowhere: Settings, tmp_path: Path, content: str
    ) -> None:
        """Exit 1 and one line naming the folder and the files the format reads."""
        folder = tmp_path / "export"
        folder.mkdir()
        if content == "other files":
            (folder / "notes.txt").write_text("x")
        elif content == "a dump one level down":
            dump_in(folder / "site")
        done = run_cli(nowhere, "import", "--format", "stackexchange", str(folder), "--dry-run")
        line = one_line_error(done)
        assert ExitCode.FAILURE == done.returncode, line
        assert f"{folder} holds no stackexchange file at its top" in line
        assert "Users.xml, Posts.xml, Comments.xml" in line
        assert "" == done.stdout, "nothing was imported, so no summary"

    def test_locations_are_full_paths(self, nowhere: Settings, tmp_path: Path) -> None:
        """A skipped record's location, in the summary, the JSON and --skipped, is the file's
        full path, also when the folder was given relative to the working directory."""
        dump_in(tmp_path / "dump")
        skipped = tmp_path / "skipped.tsv"
        done = run_cli(nowhere, "import", "--format", "stackexchange", "dump", "--dry-run",
                       "--skipped", str(skipped), cwd=tmp_path)  # fmt: skip
        assert 0 == done.returncode, done.stderr
        where = f"{tmp_path}/dump/Users.xml:row 5"
        assert f"    {where}  missing_time" in done.stderr
        assert where == json.loads(done.stdout)["skipped_examples"][0]["location"]
        assert skipped.read_text().startswith(f"{where}\tmissing_time\t")

    @pytest.mark.parametrize("case", ["unmappable records", "an empty file"])
    def test_nothing_mapped_exits_1(self, nowhere: Settings, tmp_path: Path, case: str) -> None:
        """Records read but none mapped (the wrong --format), or none at all: exit 1, with a
        last line that says so and what to check."""
        source = tmp_path / "events.json"
        source.write_text('{"not": "an activity"}\n' if case == "unmappable records" else "")
        done = run_cli(nowhere, "import", "--format", "activitystreams", str(source), "--dry-run")
        assert ExitCode.FAILURE == done.returncode, done.stderr
        last = done.stderr.splitlines()[-1]
        assert last.startswith("esn-pulse: nothing imported: ")
        assert "--format" in last and "Traceback" not in done.stderr
        assert 0 == json.loads(done.stdout)["records_mapped"]
