"""The optional config file under the environment, and `esn-pulse config` that shows both."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from stream.cli import main
from stream.cli_errors import ExitCode
from stream.config_file import ConfigFileError
from stream.settings import Settings, get_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No ESN_* variable of the caller's, and a working directory of the test's own."""
    for key in list(os.environ):
        if key.upper().startswith("ESN_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


class TestSources:
    def test_toml_in_the_working_directory_is_read_without_being_named(
        self, tmp_path: Path
    ) -> None:
        """./esn-pulse.toml sets what it names; the rest keeps its default."""
        write(tmp_path / "esn-pulse.toml", 'web_port = 7001\nclock = "event"\n')
        settings = get_settings()
        assert (7001, "event", "esn:") == (settings.web_port, settings.clock, settings.redis_prefix)

    def test_environment_wins_over_the_file(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """An ESN_* variable overrides the same setting in the file."""
        write(tmp_path / "esn-pulse.toml", "web_port = 7001\n")
        monkeypatch.setenv("ESN_WEB_PORT", "7002")
        assert 7002 == get_settings().web_port

    def test_named_dotenv_file_replaces_the_default_toml(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """ESN_CONFIG_FILE names the one file read; other tools' variables in it are left alone."""
        write(tmp_path / "esn-pulse.toml", "web_port = 7001\n")
        env = write(tmp_path / "prod.env", "# prod\nCOMPOSE_PROJECT_NAME=x\n\nESN_WEB_PORT=7003\n")
        monkeypatch.setenv("ESN_CONFIG_FILE", str(env))
        assert 7003 == get_settings().web_port

    def test_toml_booleans_and_numbers_parse_like_environment_text(self, tmp_path: Path) -> None:
        """TOML's typed values go through the same parsing as variables."""
        write(
            tmp_path / "esn-pulse.toml",
            "kafka_ssl_check_hostname = false\napi_cache_seconds = 2.5\n",
        )
        settings = get_settings()
        assert (False, 2.5) == (settings.kafka_ssl_check_hostname, settings.api_cache_seconds)


class TestRefusals:
    @pytest.mark.parametrize(
        "name, text, expected",
        [
            ("esn-pulse.toml", "web_prt = 1\n", "esn-pulse.toml:1: 'web_prt' is not a setting"),
            ("a.env", "ESN_WEB_PORT=1\nESN_WEB_PRT=1\n", "a.env:2: 'ESN_WEB_PRT' is not a"),
            ("a.env", "# ok\n\nESN_WEB_PORT 1\n", "a.env:3: not a NAME=value line"),
            ("esn-pulse.toml", "x = [1]\n", "'x' is a list, not a single value"),
            ("esn-pulse.toml", "web_port = \n", "not valid TOML"),
            ("esn-pulse.toml", "ESN_WEB_PORT = 1\n", "TOML names have no prefix: web_port"),
            ("a.env", "ESN_CONFIG_FILE=b.env\n", "cannot name another config file"),
            ("esn-pulse.toml", "\n\nweb_port = 'abc'\n", "esn-pulse.toml:3: invalid web_port"),
            ("a.env", "ESN_CLOCK=sundial\n", "a.env:1: invalid ESN_CLOCK"),
        ],
    )
    def test_a_bad_file_is_one_error_naming_file_and_line(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, text: str, expected: str
    ) -> None:
        """Typos, malformed lines and bad values are refused with where they are, never skipped."""
        path = write(tmp_path / name, text)
        if name != "esn-pulse.toml":
            monkeypatch.setenv("ESN_CONFIG_FILE", str(path))
        with pytest.raises(ConfigFileError) as raised:
            get_settings()
        assert expected in str(raised.value)
        assert ExitCode.BAD_CONFIG == raised.value.exit_code == 1

    def test_a_missing_named_file_is_refused(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """ESN_CONFIG_FILE naming nothing is an error, not a silent fall back to defaults."""
        monkeypatch.setenv("ESN_CONFIG_FILE", "/nonexistent/esn.env")
        with pytest.raises(ConfigFileError, match="is not a readable file"):
            get_settings()

    def test_an_oversized_or_binary_file_is_refused(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The wrong file named (a dump, a binary) is one line, not a memory spike or a crash."""
        big = write(tmp_path / "big.env", "# x\n" * 300_000)
        monkeypatch.setenv("ESN_CONFIG_FILE", str(big))
        with pytest.raises(ConfigFileError, match="over 1 MiB"):
            get_settings()
        binary = tmp_path / "bin.env"
        binary.write_bytes(b"\xff\xfe\x00ESN")
        monkeypatch.setenv("ESN_CONFIG_FILE", str(binary))
        with pytest.raises(ConfigFileError, match="not UTF-8 text"):
            get_settings()

    def test_a_bad_environment_value_stays_the_variables_error(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """When the environment sets the bad value, the file is not blamed."""
        write(tmp_path / "esn-pulse.toml", "web_port = 7001\n")
        monkeypatch.setenv("ESN_WEB_PORT", "abc")
        with pytest.raises(Exception) as raised:
            get_settings()
        assert not isinstance(raised.value, ConfigFileError)


class TestConfigCommand:
    def test_each_setting_once_with_its_source_and_no_secret(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """One line per setting: env, file or default; secrets and the URL password masked."""
        env = write(
            tmp_path / "esn.env",
            "ESN_WEB_PORT=7004\nESN_PSEUDONYMIZE_KEY=file-secret-key\n"
            "ESN_REDIS_URL=redis://app:url-password@127.0.0.1:6379/0\n",
        )
        monkeypatch.setenv("ESN_KAFKA_SASL_PASSWORD", "env-secret-pw")
        # --config sets ESN_CONFIG_FILE in this process: undone after the test, so later tests of
        # the session (e2e ones run the CLI with this environment) do not read this file.
        monkeypatch.setenv("ESN_CONFIG_FILE", str(env))
        result = CliRunner().invoke(main, ["--config", str(env), "config"])
        assert 0 == result.exit_code, result.output
        for secret in ("file-secret-key", "env-secret-pw", "url-password"):
            assert secret not in result.output
        lines = result.output.splitlines()
        assert f"# config file: {env}" == lines[0]
        rows = {line.split()[0]: line.split()[1:] for line in lines[1:]}
        assert {f"ESN_{name.upper()}" for name in Settings.model_fields} == set(rows)
        assert ["file", "7004"] == rows["ESN_WEB_PORT"]
        assert ["file", "***"] == rows["ESN_PSEUDONYMIZE_KEY"]
        assert ["env", "***"] == rows["ESN_KAFKA_SASL_PASSWORD"]
        assert ["file", "redis://app:***@127.0.0.1:6379/0"] == rows["ESN_REDIS_URL"]
        assert ["default", "esn:"] == rows["ESN_REDIS_PREFIX"]

    def test_json_lists_the_same_settings(self, tmp_path: Path) -> None:
        """--json: the file read and every setting as name, value, source."""
        write(tmp_path / "esn-pulse.toml", "web_port = 7005\n")
        result = CliRunner().invoke(main, ["config", "--json"])
        assert 0 == result.exit_code, result.output
        doc = json.loads(result.output)
        assert "esn-pulse.toml" == doc["config_file"]
        by_name = {row["name"]: row for row in doc["settings"]}
        assert {"name": "ESN_WEB_PORT", "value": "7005", "source": "file"} == by_name[
            "ESN_WEB_PORT"
        ]

    def test_version_is_the_package_metadata(self) -> None:
        """--version prints the installed distribution's version."""
        from importlib.metadata import version

        result = CliRunner().invoke(main, ["--version"])
        assert f"esn-pulse, version {version('esn-pulse')}\n" == result.output
