"""Pure parts of the API: token entries, the constant-time lookup, loopback, the answer cache."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from stream.api.auth import (
    TokenConfigError,
    digest_of,
    entry_for,
    find_token,
    is_loopback,
    new_secret,
    parse_tokens,
)
from stream.api.cache import AnswerCache


def _entry(name: str, scopes: str, secret: str) -> str:
    return f"{name}:{scopes}:{hashlib.sha256(secret.encode()).hexdigest()}"


class TestTokens:
    def test_entries_parse_with_comments_and_blank_lines(self) -> None:
        """One entry a line or several a line; '#' starts a comment."""
        dash, hr = _entry("dash", "aggregate", "s1"), _entry("hr", "people,aggregate", "s2")
        text = f"# tokens\n{dash}\n\n{hr}  # hr\n"
        tokens = parse_tokens(text, "file")
        assert ["dash", "hr"] == [t.name for t in tokens]
        assert frozenset({"people", "aggregate"}) == tokens[1].scopes

    @pytest.mark.parametrize(
        "entry",
        [
            "dash:aggregate",
            "dash:admin:" + "0" * 64,
            "dash::" + "0" * 64,
            "da sh:aggregate:" + "0" * 64,
            "dash:aggregate:" + "0" * 63,
            "dash:aggregate:" + "g" * 64,
            ":aggregate:" + "0" * 64,
        ],
    )
    def test_a_malformed_entry_names_its_line_never_its_text(self, entry: str) -> None:
        """The error says where (source, line), not what the line holds."""
        with pytest.raises(TokenConfigError) as caught:
            parse_tokens(f"# first\n{entry}\n", "ESN_API_TOKENS_FILE /x")
        assert "ESN_API_TOKENS_FILE /x line 2" in str(caught.value)
        assert entry not in str(caught.value)

    def test_a_name_used_twice_is_refused(self) -> None:
        """Two entries of one name would make the access log ambiguous."""
        with pytest.raises(TokenConfigError, match="used twice: dash"):
            parse_tokens(
                _entry("dash", "aggregate", "a") + " " + _entry("dash", "people", "b"), "x"
            )

    def test_only_the_exact_secret_matches(self) -> None:
        """The secret finds its token; a prefix, an extension or another secret finds none."""
        tokens = parse_tokens(
            _entry("a", "aggregate", "secret-a") + "\n" + _entry("b", "people", "secret-b"), "x"
        )
        assert "a" == getattr(find_token(tokens, "secret-a"), "name", None)
        assert "b" == getattr(find_token(tokens, "secret-b"), "name", None)
        for wrong in ("secret-", "secret-ax", "", "SECRET-A", "secret-a\n"):
            assert find_token(tokens, wrong) is None

    def test_a_new_secret_and_its_entry_round_trip(self) -> None:
        """esn-pulse api token's output: the entry holds the secret's hash, never the secret."""
        secret = new_secret()
        assert secret.startswith("esnp_") and len(secret) > 40 and secret != new_secret()
        line = entry_for("hr-tool", ["people"], secret)
        assert secret not in line and digest_of(secret).hex() in line
        (token,) = parse_tokens(line, "x")
        assert token == find_token([token], secret)

    @pytest.mark.parametrize(
        ("host", "loopback"),
        [("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("[::1]", True),
         ("localhost", True), ("0.0.0.0", False), ("::", False), ("10.0.0.5", False),
         ("example.internal", False)],
    )  # fmt: skip
    def test_loopback(self, host: str, loopback: bool) -> None:
        """Only 127.0.0.0/8, ::1 and localhost count as loopback."""
        assert loopback == is_loopback(host)


class TestAnswerCache:
    async def test_concurrent_callers_share_one_computation(self) -> None:
        """Twenty callers at once: one computation, the same answer for all."""
        now = [0.0]
        cache = AnswerCache(10, lambda: now[0])
        calls = 0
        gate = asyncio.Event()

        async def compute() -> dict[str, int]:
            nonlocal calls
            calls += 1
            await gate.wait()
            return {"n": calls}

        waiting = [asyncio.ensure_future(cache.get("k", compute)) for _ in range(20)]
        await asyncio.sleep(0)
        gate.set()
        answers = await asyncio.gather(*waiting)
        assert 1 == calls
        assert all(answer == (0.0, {"n": 1}) for answer in answers)

    async def test_reused_until_the_ttl_then_computed_afresh(self) -> None:
        """Within the TTL the age grows; past it a new computation runs."""
        now = [100.0]
        cache = AnswerCache(10, lambda: now[0])
        counter = iter(range(10))

        async def compute() -> int:
            return next(counter)

        assert (0.0, 0) == await cache.get("k", compute)
        now[0] = 109.5
        assert (9.5, 0) == await cache.get("k", compute)
        now[0] = 110.0
        assert (0.0, 1) == await cache.get("k", compute)
        assert (0.0, 2) == await cache.get("other", compute)

    async def test_a_failed_computation_is_not_cached(self) -> None:
        """An error reaches the caller; the next call computes again."""
        cache = AnswerCache(10, lambda: 0.0)
        attempts = 0

        async def flaky() -> str:
            nonlocal attempts
            attempts += 1
            if attempts == 1:
                raise ConnectionError("redis down")
            return "ok"

        with pytest.raises(ConnectionError):
            await cache.get("k", flaky)
        assert (0.0, "ok") == await cache.get("k", flaky)
