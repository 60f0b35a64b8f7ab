"""stream/store/ is the only door to Redis: no module outside it calls the client or builds a key.

Issue 14 changes the key layout inside stream/store/ only; a module that reaches for
``store.client`` or ``store.keys`` would silently keep the old layout. The check parses every
module with ``ast`` (no import, no server) and looks for the shapes such a reach takes.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STREAM = ROOT / "stream"

#: Modules that may reach into Redis directly: none (a module that is clean must not stay
#: listed, see the last test).
ALLOWED: frozenset[str] = frozenset()

#: Method names that only a Redis client has: a call of one outside stream/store/ is a reach.
_REDIS_ONLY_CALLS = frozenset({"pipeline", "register_script", "scan_iter", "hscan_iter"})
#: Names of the key builders: using one outside stream/store/ builds key names.
_KEY_BUILDERS = frozenset({"RedisKeys", "PartitionKeys", "OutboxKeys"})


def _is_store(node: ast.expr) -> bool:
    """``store``, ``self.store``, ``self._store``, ``redis_store``...: what holds a RedisStore."""
    name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")
    return name.lower().endswith("store")


def reaches(source: str) -> list[str]:
    """Each direct Redis reach in a module's source, as "line: code" (pure)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        why = None
        if isinstance(node, ast.Attribute):
            if node.attr in ("client", "keys") and _is_store(node.value):
                why = f"{ast.unparse(node)} (the store's {node.attr})"
            elif isinstance(node.value, ast.Attribute) and node.value.attr == "keys":
                why = f"{ast.unparse(node)} (a key name built outside stream/store/)"
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in _REDIS_ONLY_CALLS:
                why = f"{ast.unparse(node.func)}() (a Redis client call)"
        elif isinstance(node, ast.Name) and node.id in _KEY_BUILDERS:
            why = f"{node.id} (a key builder)"
        elif isinstance(node, ast.ImportFrom) and node.module == "stream.store.keys":
            why = "import from stream.store.keys (the key layout)"
        if why is not None:
            found.append((getattr(node, "lineno", 0), why))
    return [f"{line}: {why}" for line, why in sorted(set(found))]


def _modules() -> dict[str, list[str]]:
    """Module path (from the repository root) -> its reaches, for every module outside store/."""
    out = {}
    for path in sorted(STREAM.rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith("stream/store/"):
            continue
        out[relative] = reaches(path.read_text(encoding="utf-8"))
    return out


class TestReachDetector:
    @pytest.mark.parametrize(
        "code",
        [
            "await store.client.get(key)",
            "raw = await self.store.client.hgetall(k)",
            "client = self._store.client",
            "async with redis_store.client.pipeline(transaction=False) as pipe: pass",
            "key = store.keys.day('2026-01-01')",
            "k = self.keys\nk2 = self.keys.release_version(0)",
            "self.script = anything.register_script(SOURCE)",
            "from stream.store.keys import RedisKeys",
            "from stream.store import RedisKeys\nRedisKeys('esn:')",
        ],
    )
    def test_a_direct_reach_is_found(self, code: str) -> None:
        """Every shape of a reach into the client or the key layout is reported."""
        assert reaches(code) != []

    @pytest.mark.parametrize(
        "code",
        [
            "await producer.client.fetch_all_metadata()",
            "for k in counts.keys(): pass",
            "await UserReads(store, 3).inactivity_state('u1')",
            "from redis.exceptions import RedisError",
        ],
    )
    def test_what_is_not_a_reach_passes(self, code: str) -> None:
        """Kafka clients, dict keys, the readers and Redis's exceptions are not reaches."""
        assert [] == reaches(code)

    def test_the_reported_line_is_the_reach(self) -> None:
        """A reach is reported with its line, so the failure points at it."""
        assert ["2: store.client (the store's client)"] == reaches("x = 1\nstore.client.get(k)\n")


class TestStoreBoundary:
    def test_no_module_outside_the_store_reaches_into_redis(self) -> None:
        """Outside stream/store/ (and the allow-list) nothing calls the client or builds a key."""
        offending = {
            module: found for module, found in _modules().items() if found and module not in ALLOWED
        }
        assert {} == offending, "read through a reader in stream/store/ (add a method there)"

    def test_the_allow_list_only_holds_modules_that_still_reach(self) -> None:
        """A module that no longer reaches into Redis leaves the allow-list (it only shrinks)."""
        modules = _modules()
        clean = sorted(m for m in ALLOWED if not modules.get(m))
        assert [] == clean
