"""docs/operations/security.md names every security setting, and its scopes table is the
generated OpenAPI document's routes and scopes; the README's security section links it."""

from __future__ import annotations

import json
import re
from pathlib import Path

from pydantic import SecretStr

from stream.settings import Settings

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "operations" / "security.md"
#: Settings that decide who may connect to what, what is kept about people, and what is exposed.
SECURITY_PREFIXES = (
    "kafka_security", "kafka_sasl", "kafka_ssl", "redis_url", "redis_username", "redis_password",
    "redis_tls", "redis_prefix", "topic_replication", "topic_min_insync", "api_host",
    "api_tokens", "api_access_log", "web_host", "metrics_", "pseudonymize", "dlq_detail",
    "min_group_size", "community_metrics", "config_file",
)  # fmt: skip


def security_settings() -> set[str]:
    return {
        f"ESN_{name.upper()}"
        for name, field in Settings.model_fields.items()
        if field.annotation is SecretStr or name.startswith(SECURITY_PREFIXES)
    }


def section(text: str, heading: str) -> str:
    return text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


class TestSecurityDoc:
    def test_every_secret_is_a_security_setting(self) -> None:
        """The prefixes catch every SecretStr field too (a new secret cannot be left out)."""
        secrets = {n for n, f in Settings.model_fields.items() if f.annotation is SecretStr}
        assert {f"ESN_{n.upper()}" for n in secrets} <= security_settings()
        assert len(security_settings()) >= 25

    def test_every_security_setting_is_in_the_settings_table(self) -> None:
        """Each one is named in 'Every security setting', each SecretStr marked secret."""
        table = section(DOC.read_text(), "Every security setting")
        named = set(re.findall(r"`(ESN_[A-Z_]+)`", table))
        assert set() == security_settings() - named
        assert set() == named - {f"ESN_{n.upper()}" for n in Settings.model_fields}, "stale"
        for name, field in Settings.model_fields.items():
            if field.annotation is SecretStr:
                (row,) = [r for r in table.splitlines() if f"`ESN_{name.upper()}`" in r]
                assert "**secret**" in row, name

    def test_the_scopes_table_is_the_openapi_document_s(self) -> None:
        """Every route of docs/api/openapi.json with its x-scope, and no other row."""
        document = json.loads((REPO / "docs" / "api" / "openapi.json").read_text())
        expected = {
            f"{method.upper()} {path}": operation["x-scope"]
            for path, item in document["paths"].items()
            for method, operation in item.items()
        }
        table = DOC.read_text().split("<!-- scopes:start -->")[1].split("<!-- scopes:end -->")[0]
        rows = re.findall(r"^\| `([A-Z]+ /[^`]+)` \| `(\w+)`", table, re.MULTILINE)
        assert expected == dict(rows)
        assert len(rows) == len(expected), "a route listed twice"
        for path, item in document["paths"].items():
            for operation in item.values():
                assert [{"bearer": [operation["x-scope"]]}] == operation["security"], path

    def test_the_readme_security_section_links_the_doc_and_names_the_secrets(self) -> None:
        """README ## Security points at security.md and names every secret setting."""
        readme = section((REPO / "README.md").read_text(), "Security")
        assert "(docs/operations/security.md)" in readme
        for name, field in Settings.model_fields.items():
            if field.annotation is SecretStr:
                assert f"`ESN_{name.upper()}`" in readme, name
