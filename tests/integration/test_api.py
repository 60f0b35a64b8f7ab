"""``esn-pulse api`` against the session's real Redis: tokens and scopes route by route from the
OpenAPI document, the people access log, the refusal to expose an unauthenticated API, and every
route fuzzed (always a 4xx JSON error, never a 500, never an ERROR in the log)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import referencing

from stream.cli_errors import ExitCode
from stream.fold import MS_PER_DAY
from stream.settings import Settings
from stream.store import RedisStore
from tests.api_support import ApiProcess, MadeToken, make_token
from tests.e2e.test_cli import esn
from tests.integration.test_analytics_store import batch
from tests.support import REPO, delete_deployment_keys, isolated, settings_env

pytestmark = pytest.mark.integration

USERS = ("alice.api", "bob.api")
INITIATIVE = "api-drill"
#: An id that must never reach the access log.
SECRET_ID = "carol.private@corp.example"


@dataclass
class Served:
    settings: Settings
    api: ApiProcess
    aggregate: MadeToken
    people: MadeToken
    both: MadeToken
    document: dict[str, Any]
    access_log: Path

    def sample_url(self, template: str) -> str:
        """A URL of the route with ids that exist (users, the initiative) or do not."""
        return template.format(user_id=USERS[0], community_id="c-none", name=INITIATIVE) + (
            "?metric=dau" if template.endswith("/trends") else ""
        )


@pytest.fixture(scope="module")
def served(
    local_stack: Any, stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    settings = isolated(stack_settings, "api")
    tmp = tmp_path_factory.mktemp("api")
    today = int(time.time() * 1000) // MS_PER_DAY * MS_PER_DAY

    async def seed() -> None:
        store = RedisStore.from_settings(settings)
        events = [(u, today - i * 3_600_000, "p1") for i, u in enumerate(USERS)]
        await store.apply([batch(0, events)])
        await store.close()

    asyncio.run(seed())
    users = tmp / "users.csv"
    users.write_text("user_id\n" + "\n".join(USERS) + "\n")
    added = esn(settings, "initiative", "add", INITIATIVE, "--start", "2026-01-05T00:00:00Z",
                "--users", str(users))  # fmt: skip
    assert added.returncode == 0, added.stderr
    tokens = (
        make_token("dash", "aggregate"),
        make_token("hr-tool", "people"),
        make_token("admin", "aggregate", "people"),
    )
    token_file = tmp / "tokens"
    token_file.write_text("# made by esn-pulse api token\n" + "\n".join(t.entry for t in tokens))
    access_log = tmp / "access.jsonl"
    api = ApiProcess(
        settings,
        REPO / ".esn-test" / "logs",
        api_tokens_file=str(token_file),
        api_access_log=str(access_log),
    ).start()
    status, document = api.get_json("/api/v1/openapi.json")
    assert status == 200
    yield Served(settings, api, *tokens, document, access_log)
    api.stop()

    delete_deployment_keys(settings)


def _validate(document: dict[str, Any], template: str, status: int, body: Any) -> None:
    """``body`` fits the document's response ``status`` of the route."""
    registry = referencing.Registry().with_resource(
        "urn:openapi",
        referencing.Resource.from_contents(
            document, default_specification=referencing.jsonschema.DRAFT202012
        ),
    )
    responses = document["paths"][template]["get"]["responses"]
    assert str(status) in responses, (template, status, body)
    ref = responses[str(status)]["content"]["application/json"]["schema"]["$ref"]
    jsonschema.Draft202012Validator({"$ref": "urn:openapi" + ref}, registry=registry).validate(body)


def _scope(document: dict[str, Any], template: str) -> str:
    operation = document["paths"][template]["get"]
    (requirement,) = operation["security"]
    (scopes,) = requirement.values()
    assert [operation["x-scope"]] == scopes
    return str(operation["x-scope"])


class TestAuth:
    def test_every_route_declares_bearer_and_one_scope(self, served: Served) -> None:
        """Bearer; users, inactive, at-risk and the nudge log are people, the rest aggregate."""
        scheme = served.document["components"]["securitySchemes"]["bearer"]
        assert {"type": "http", "scheme": "bearer"} == {k: scheme[k] for k in ("type", "scheme")}
        scopes = {t: _scope(served.document, t) for t in served.document["paths"]}
        people = {
            "/api/v1/users/{user_id}",
            "/api/v1/inactive",
            "/api/v1/at-risk",
            "/api/v1/nudges/log",
        }
        assert people == {t for t, s in scopes.items() if s == "people"}
        assert len(scopes) == 13

    def test_no_token_wrong_token_and_wrong_scope_are_refused_route_by_route(
        self, served: Served
    ) -> None:
        """401 without or with an unknown token, 403 with the other scope, 200 with the right."""
        for template in served.document["paths"]:
            url = served.sample_url(template)
            scope = _scope(served.document, template)
            other = served.people if scope == "aggregate" else served.aggregate
            right = served.aggregate if scope == "aggregate" else served.people
            for token, expected in (
                (None, 401),
                ("", 401),
                ("esnp_not-a-configured-token", 401),
                (right.secret + "x", 401),
                (other.secret, 403),
            ):
                status, body = served.api.get_json(url, token)
                assert (expected, expected) == (status, body["error"]["status"]), (url, token)
                _validate(served.document, template, status, body)
            for token in (right, served.both):
                status, body = served.api.get_json(url, token.secret)
                assert status in (200, 404), (url, body)
                assert status == 200 or "{community_id}" in template, (url, body)
                _validate(served.document, template, status, body)

    def test_a_401_challenges_for_bearer(self, served: Served) -> None:
        """WWW-Authenticate: Bearer on a 401."""
        import urllib.error
        import urllib.request

        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(served.api.base_url + "/api/v1/summary", timeout=10)
        assert 401 == caught.value.code
        assert caught.value.headers["WWW-Authenticate"].startswith("Bearer")

    def test_people_requests_are_logged_by_token_and_template_only(self, served: Served) -> None:
        """One line per people request (token, route template, status); no id, query or secret."""
        before = len(served.access_log.read_text().splitlines())
        calls = [
            (f"/api/v1/users/{USERS[1]}", served.people.secret, 200, "hr-tool"),
            (f"/api/v1/users/{SECRET_ID}", served.both.secret, 404, "admin"),
            ("/api/v1/inactive?threshold=30d&limit=5&offset=0", served.people.secret, 200,
             "hr-tool"),
            (f"/api/v1/users/{SECRET_ID}", served.aggregate.secret, 403, "-"),
            (f"/api/v1/users/{SECRET_ID}", None, 401, "-"),
            ("/api/v1/summary", served.both.secret, 200, None),
        ]  # fmt: skip
        for url, token, status, _ in calls:
            assert status == served.api.get(url, token)[0], url
        text = served.access_log.read_text()
        lines = [json.loads(line) for line in text.splitlines()[before:]]
        template = {f"/api/v1/users/{u}": "/api/v1/users/{user_id}" for u in (USERS[1], SECRET_ID)}
        expected = [
            (token, template.get(url.split("?")[0], url.split("?")[0]), status)
            for url, _, status, token in calls
            if token is not None
        ]
        assert expected == [(r["token"], r["route"], r["status"]) for r in lines]
        assert all(r["time"].endswith("Z") for r in lines)
        for leak in (*USERS, SECRET_ID, "threshold", "30d", served.people.secret):
            assert leak not in text
        api_log = served.api.log_path.read_text()
        for token in (served.aggregate, served.people, served.both):
            assert token.secret not in api_log
        assert SECRET_ID not in api_log


#: Values no route accepts as a query parameter, and ids no path knows.
HOSTILE = [
    "0001-01-01",
    "9999-12-31",
    "99999-01-01",
    "-1",
    "0",
    "1e400",
    "99999999999999999999999999",
    "2026-02-30",
    "2026-13-01",
    "yesterday",
    "'; DROP TABLE users; --",
    "<script>alert(1)</script>",
    "%00",
    "\u202e\u0000\ufeff",
    "日本語の値",
    "😀" * 50,
    "x" * 4000,
    "[]",
    "{}",
    "null",
    "true",
    "../../etc/passwd",
]


def _urls(document: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(template, URL) with each parameter of each route set to each hostile value."""
    for template, item in document["paths"].items():
        names = [p["name"] for p in item["get"].get("parameters", []) if p["in"] == "query"]
        for value in HOSTILE:
            path = template
            for p in item["get"].get("parameters", []):
                if p["in"] == "path":
                    path = path.replace("{" + p["name"] + "}", urllib.parse.quote(value, safe=""))
            yield template, path
            for name in names:
                base = template if "{" not in template else path
                yield template, base + "?" + urllib.parse.urlencode({name: value})
        # Reversed and far-apart ranges, repeated and unknown parameters, a huge query string.
        yield template, template + "?from=2026-08-01&to=2026-07-01&metric=dau"
        yield template, template + "?from=0001-01-01&to=9999-12-31&metric=dau"
        yield template, template + "?limit=10&limit=1000000&offset=-5"
        yield template, template + "?" + "&".join(f"k{i}=v" for i in range(500))
        yield template, template + "?metric=dau&from=" + "9" * 20_000


class TestFuzz:
    def test_every_route_answers_hostile_input_with_a_4xx_json_error(self, served: Served) -> None:
        """Never a 500 nor a dropped connection; every error is the document's Error shape."""
        seen = 0
        for template, url in _urls(served.document):
            status, raw = served.api.get(url, served.both.secret)
            assert status != 0, f"no answer to {url[:200]}"
            body = json.loads(raw)
            if status == 200:
                if "{" not in template:
                    continue  # an ignored unknown parameter; a valid answer
                raise AssertionError(f"200 for an unknown id: {url[:200]}")
            assert 400 <= status < 500, (url[:200], status, body)
            assert status == body["error"]["status"]
            if str(status) in served.document["paths"][template]["get"]["responses"]:
                _validate(served.document, template, status, body)
            seen += 1
        assert seen > 300
        log = served.api.log()
        assert "ERROR" not in log and "Traceback" not in log, log

    def test_unknown_paths_and_methods_are_json_errors(self, served: Served) -> None:
        """404 and 405 carry the Error shape too."""
        status, body = served.api.get_json("/api/v1/nothing-here", served.both.secret)
        assert (404, 404) == (status, body["error"]["status"])
        status, body = served.api.get_json("/router/", served.both.secret)
        assert 404 == status


class TestStart:
    def _run(self, settings: Settings, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "stream.cli", "api"],
            env={**settings_env(settings), **env},
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
        )

    def test_a_non_loopback_interface_without_tokens_is_refused(self, served: Served) -> None:
        """Exit 1, one line, before anything listens."""
        done = self._run(served.settings, ESN_API_HOST="0.0.0.0", ESN_API_TOKENS="",
                         ESN_API_TOKENS_FILE="")  # fmt: skip
        assert ExitCode.BAD_CONFIG == done.returncode
        (line,) = done.stderr.strip().splitlines()
        assert "ESN_API_HOST=0.0.0.0 is not loopback and no API token is configured" in line

    def test_a_malformed_token_entry_is_refused_without_echoing_it(self, served: Served) -> None:
        """Exit 1 naming where the entry is; the entry itself is not printed."""
        done = self._run(served.settings, ESN_API_TOKENS="ops:people:notahash-SECRETISH",
                         ESN_API_TOKENS_FILE="")  # fmt: skip
        assert ExitCode.BAD_CONFIG == done.returncode
        (line,) = done.stderr.strip().splitlines()
        assert "ESN_API_TOKENS line 1" in line and "SECRETISH" not in line

    def test_an_unreadable_token_file_is_refused(self, served: Served, tmp_path: Path) -> None:
        """Exit 1 naming the file; nothing listens."""
        missing = tmp_path / "no-such-tokens"
        done = self._run(served.settings, ESN_API_TOKENS_FILE=str(missing), ESN_API_TOKENS="")
        assert ExitCode.BAD_CONFIG == done.returncode
        (line,) = done.stderr.strip().splitlines()
        assert f"ESN_API_TOKENS_FILE {missing}: cannot read" in line

    def test_without_tokens_it_serves_loopback_openly_and_says_so(self, served: Served) -> None:
        """No token configured: a warning at start, answers without a token on 127.0.0.1."""
        api = ApiProcess(served.settings, REPO / ".esn-test" / "logs").start()
        try:
            assert 200 == api.get("/api/v1/summary")[0]
            assert "WITHOUT authentication, loopback only" in api.log()
        finally:
            api.stop()

    def test_token_names_and_scopes_are_checked(self) -> None:
        """A bad name or scope is a usage error (1)."""
        for args in (["bad name", "--scope", "people"], ["ok", "--scope", "admin"], ["ok"]):
            done = subprocess.run(
                [sys.executable, "-m", "stream.cli", "api", "token", *args],
                capture_output=True, text=True, timeout=60, cwd=REPO,
            )  # fmt: skip
            assert ExitCode.USAGE == done.returncode, done
            assert 1 == len(done.stderr.strip().splitlines()), done.stderr
