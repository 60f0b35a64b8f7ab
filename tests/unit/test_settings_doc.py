"""The settings table (docs/reference/settings.md) is the settings class, field for field."""

from __future__ import annotations

import re
from pathlib import Path

from stream.settings import Settings

README = Path(__file__).resolve().parents[2] / "docs" / "reference" / "settings.md"


def readme_rows() -> dict[str, tuple[str, str]]:
    text = README.read_text()
    table = text.split("<!-- settings-table:start -->")[1].split("<!-- settings-table:end -->")[0]
    rows = {}
    for line in table.strip().splitlines()[2:]:
        match = re.match(r"\| `(ESN_\w+)` \| `([^`]*)` \| (.*) \|$", line)
        assert match, f"malformed row: {line}"
        rows[match[1]] = (match[2], match[3])
    return rows


def test_every_setting_is_documented_with_its_default_and_description() -> None:
    """Names, defaults and descriptions in the README equal stream/settings.py."""
    expected = {
        f"ESN_{name.upper()}": (str(field.default), field.description)
        for name, field in Settings.model_fields.items()
    }
    assert expected == readme_rows()
