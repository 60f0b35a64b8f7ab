"""XML dumps with entities: a billion laughs, an external entity, an id smuggled in by an entity.

The Stack Exchange adapter parses with defusedxml: a document type or entity declaration breaks the
file before anything is expanded, and no row of such a file is delivered.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from stream.adapters.base import Broken
from stream.adapters.stackexchange import StackExchangeAdapter

LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE users [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<users>
  <row Id="7" CreationDate="2026-01-01T00:00:00.000" DisplayName="&lol9;" />
</users>
"""

#: Ten thousand-fold, under expat's own amplification limit: the stdlib parser expands it.
SMALL_LAUGHS = LAUGHS.replace("&lol9;", "&lol4;")

EXTERNAL = """<?xml version="1.0"?>
<!DOCTYPE users [ <!ENTITY secret SYSTEM "file://{path}"> ]>
<users>
  <row Id="8" CreationDate="2026-01-01T00:00:00.000" DisplayName="&secret;" />
</users>
"""

#: An id that only exists once an entity is expanded.
SMUGGLED = """<?xml version="1.0"?>
<!DOCTYPE comments [ <!ENTITY who "666"> ]>
<comments>
  <row Id="1" PostId="1" UserId="&who;" CreationDate="2026-01-01T00:00:00.000" />
</comments>
"""


def rows_of(path: Path) -> list[object]:
    """Every record the adapter reads from one dump file (raises Broken where it breaks)."""
    return [record.raw for record in StackExchangeAdapter().records(path)]


class TestEntitiesAreNeverExpanded:
    @pytest.mark.parametrize(
        ("name", "text"),
        [("Users.xml", LAUGHS), ("Users.xml", SMALL_LAUGHS), ("Comments.xml", SMUGGLED)],
    )
    def test_entity_declarations_break_the_file_before_any_row(
        self, tmp_path: Path, name: str, text: str
    ) -> None:
        """A billion laughs (and a smaller one expat would expand) and an entity-made id: the
        file is broken at its prolog, no row delivered."""
        path = tmp_path / name
        path.write_text(text)
        rows: list[object] = []
        with pytest.raises(Broken, match="refused unexpanded") as broken:
            for record in StackExchangeAdapter().records(path):
                rows.append(record.raw)
        assert [] == rows
        assert "its prolog" == broken.value.where

    def test_an_external_entity_is_not_read(self, tmp_path: Path) -> None:
        """SYSTEM "file://..." is refused: the file's content reaches no record or message."""
        secret = tmp_path / "secret.txt"
        secret.write_text("TOP-SECRET-CONTENT")
        path = tmp_path / "Users.xml"
        path.write_text(EXTERNAL.format(path=secret))
        with pytest.raises(Broken) as broken:
            rows_of(path)
        assert "TOP-SECRET-CONTENT" not in str(broken.value)
        assert "refused unexpanded" in broken.value.detail

    def test_a_plain_dump_still_reads(self, tmp_path: Path) -> None:
        """Without a document type declaration, rows come through as before."""
        path = tmp_path / "Users.xml"
        path.write_text(
            '<?xml version="1.0" encoding="utf-8"?>\n<users>\n'
            '  <row Id="9" CreationDate="2026-01-01T00:00:00.000" DisplayName="&lt;b&gt;" />\n'
            "</users>\n"
        )
        ((name, row),) = rows_of(path)  # type: ignore[misc]
        assert ("Users.xml", "<b>") == (name, row["DisplayName"])
