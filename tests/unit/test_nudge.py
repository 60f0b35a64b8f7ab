"""The nudge service's pure logic: the rules file, the intake plan, consent and quiet hours,
templates, what a server's message may carry, and the effect figure."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from stream.nudge import intake
from stream.nudge.channels import Outgoing, masked, scrub
from stream.nudge.channels.smtp import build_email
from stream.nudge.channels.webhook import payload
from stream.nudge.effect import DAY_MS, effect
from stream.nudge.rules import Rules, RulesError, load_rules
from stream.nudge.suppression import OptOuts, consent, in_quiet_hours
from stream.nudge.templates import Renderer, TemplateProblem

RULES = """
window = "14d"
hold = "10m"
max_age = "2d"
timezone = "Europe/Berlin"
quiet_hours = "20:00-08:00"
[links]
training = "https://intranet.example.com/start"
[channels.email]
type = "email"
[channels.hr]
type = "webhook"
preset = "teams"
url_env = "ESN_TEST_HOOK"
[[rules]]
kind = "inactive"
threshold = "30d"
channels = ["email"]
[[rules]]
kind = "at_risk"
channels = ["email", "hr"]
template = "inactive"
"""


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


NOW = ms("2026-06-03T10:00:00+00:00")


def rules(tmp_path: Path, text: str = RULES) -> Rules:
    path = tmp_path / "rules.toml"
    path.write_text(text)
    return load_rules(path)


def record(
    kind: str, threshold: str | None = None, at: str = "2026-06-03T09:00:00+00:00"
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schema": "esn.users.flagged.v1",
        "kind": kind,
        "user_id": "p_1",
        "at": at,
        "last_seen": "2026-05-01T09:00:00.000+00:00",
        "communities": {"owner": ["c1"], "member": [], "follower": ["c2"]},
        "event_id": f"p_1:{kind}:{threshold or ''}:1",
    }
    if threshold:
        doc["threshold"] = threshold
    return doc


class TestRulesFile:
    def test_a_good_file_loads_with_paths_next_to_it(self, tmp_path: Path) -> None:
        """Relative template and opt-out paths are read next to the rules file."""
        loaded = rules(tmp_path, 'templates = "t"\nopt_out_file = "o.txt"\n' + RULES)
        assert ["inactive", "at_risk"] == [r.kind for r in loaded.rules]
        assert (str(tmp_path / "t"), str(tmp_path / "o.txt")) == (
            loaded.templates,
            loaded.opt_out_file,
        )

    @pytest.mark.parametrize(
        ("text", "named"),
        [
            ("rules = [", "not TOML"),
            ('[channels.e]\ntype = "fax"\n[[rules]]\nkind = "inactive"\nchannels = ["e"]', "type"),
            ('[channels.e]\ntype = "email"\n[[rules]]\nkind = "inactive"\nchannels = ["x"]', "'x'"),
            (
                '[channels.e]\ntype = "email"\n[[rules]]\nkind = "reactivated"\nchannels = ["e"]',
                "ends",
            ),
            (
                '[channels.w]\ntype = "webhook"\n[[rules]]\nkind = "inactive"\nchannels = ["w"]',
                "url",
            ),
            (
                'window = "soon"\n[channels.e]\ntype = "email"\n'
                '[[rules]]\nkind = "a"\nchannels = ["e"]',
                "window",
            ),
        ],
    )
    def test_a_bad_file_is_refused_naming_the_problem(
        self, tmp_path: Path, text: str, named: str
    ) -> None:
        """Each mistake ends in one RulesError that names the field or the value."""
        with pytest.raises(RulesError, match=named):
            rules(tmp_path, text)

    def test_any_kind_may_be_nudged(self, tmp_path: Path) -> None:
        """Kinds are data: a rule for at_risk matches at_risk records, thresholds narrow."""
        loaded = rules(tmp_path)
        assert 1 == len(loaded.rules_for("at_risk", None))
        assert [] == loaded.rules_for("inactive", "90d")
        assert 1 == len(loaded.rules_for("inactive", "30d"))


class TestIntakePlan:
    def test_a_matching_flag_makes_one_pending_delivery_per_channel(self, tmp_path: Path) -> None:
        """Delivery ids are event id and channel; due after the hold; an effect entry opens."""
        plan = intake.plan(record("at_risk"), rules(tmp_path), NOW)
        assert ["p_1:at_risk::1|email", "p_1:at_risk::1|hr"] == [
            d["id"] for d in plan["deliveries"]
        ]
        assert {NOW + 600_000} == {d["due"] for d in plan["deliveries"]}
        assert {"inactive"} == {d["entry"]["template"] for d in plan["deliveries"]}
        assert "pending" == plan["effect"]["group"]

    def test_an_old_flag_is_suppressed_as_stale(self, tmp_path: Path) -> None:
        """A replayed flag older than max_age is audited, never delivered."""
        old = record("inactive", "30d", at="2026-05-01T00:00:00+00:00")
        plan = intake.plan(old, rules(tmp_path), NOW)
        assert ([], ["stale"]) == (plan["deliveries"], [a["outcome"] for a in plan["audit"]])
        assert plan["effect"] is None

    def test_an_ending_record_cancels_and_nothing_else(self, tmp_path: Path) -> None:
        """reactivated and withdrawn end the person's pending nudges."""
        for kind in ("reactivated", "withdrawn"):
            plan = intake.plan(record(kind), rules(tmp_path), NOW)
            assert (True, []) == (plan["ends"], plan["deliveries"])

    def test_a_kind_without_a_rule_only_moves_the_fence(self, tmp_path: Path) -> None:
        """never_active has no rule here: no delivery, no effect entry."""
        plan = intake.plan(record("never_active"), rules(tmp_path), NOW)
        assert ([], None, False) == (plan["deliveries"], plan["effect"], plan["ends"])


class TestConsent:
    def entry(self) -> dict[str, Any]:
        return {"person": "p_1", "channel": "email"}

    def test_disabled_opted_out_and_no_address_are_final(self, tmp_path: Path) -> None:
        """Each is a suppression with its own outcome, decided before anything is sent."""
        r = rules(tmp_path, RULES.replace('quiet_hours = "20:00-08:00"', ""))
        none = OptOuts("", None)
        cases = [
            ({"status": "disabled", "email": "a@x"}, "disabled"),
            ({"status": "enabled", "email": "a@x", "opt_out": True}, "opted_out"),
            ({"status": "enabled"}, "no_address"),
        ]
        for person, outcome in cases:
            verdict = consent(self.entry(), person, none, r, "email", NOW)
            assert verdict is not None and outcome == verdict.outcome
        assert consent(self.entry(), {"email": "a@x"}, none, r, "email", NOW) is None

    def test_the_opt_out_file_matches_ids_pseudonyms_and_addresses(self, tmp_path: Path) -> None:
        """A raw id is matched through the pseudonymizer; addresses case-insensitively."""
        path = tmp_path / "opt-out.txt"
        path.write_text("u-raw  # asked on 2026-05-02\nAda@Example.com\n\n")
        opt_outs = OptOuts(str(path), lambda uid: "p_" + uid)
        opt_outs.refresh()
        assert ("p_u-raw", None) in opt_outs
        assert ("p_other", "ada@example.com") in opt_outs
        assert ("p_other", "bob@example.com") not in opt_outs

    def test_a_missing_opt_out_file_stops_the_service(self, tmp_path: Path) -> None:
        """Nobody's opt-out may be lost to a typo in the path."""
        with pytest.raises(OSError, match="opt-out file"):
            OptOuts(str(tmp_path / "missing.txt"), None).refresh()

    def test_quiet_hours_defer_to_their_end_in_the_rules_zone(self, tmp_path: Path) -> None:
        """21:30 UTC is 23:30 in Berlin (summer): deferred to 08:00 Berlin, 06:00 UTC."""
        r = rules(tmp_path)
        assert ms("2026-06-04T06:00:00+00:00") == in_quiet_hours(r, ms("2026-06-03T21:30:00+00:00"))
        assert 0 == in_quiet_hours(r, ms("2026-06-03T10:00:00+00:00"))
        assert ms("2026-06-03T06:00:00+00:00") == in_quiet_hours(r, ms("2026-06-03T05:00:00+00:00"))


class TestTemplates:
    def test_the_persons_language_then_the_default(self, tmp_path: Path) -> None:
        """German when the profile says de; English for a language without a template."""
        r = rules(tmp_path)
        renderer = Renderer(r)
        german = renderer.render(
            "inactive", record("inactive"), {"name": "Ada", "language": "de"}, NOW
        )
        french = renderer.render(
            "inactive", record("inactive"), {"name": "Ada", "language": "fr"}, NOW
        )
        assert ("inactive.de.txt", "inactive.en.txt") == (german.template, french.template)
        assert "Ada" in german.subject and "33 Tagen" in german.body
        assert "c1 (owner)" in french.body and "https://intranet.example.com/start" in french.body

    def test_a_folder_template_wins_and_cannot_reach_python(self, tmp_path: Path) -> None:
        """The rules' folder overrides; the sandbox refuses attribute tricks."""
        folder = tmp_path / "t"
        folder.mkdir()
        (folder / "inactive.en.txt").write_text("Subject: Hi {{ name }}\n\nBody\n")
        (folder / "evil.en.txt").write_text("Subject: x\n\n{{ flag.__class__.__mro__ }}\n")
        r = rules(tmp_path, 'templates = "t"\n' + RULES)
        renderer = Renderer(r)
        assert "Hi colleague" == renderer.render("inactive", record("inactive"), None, NOW).subject
        with pytest.raises(TemplateProblem):
            renderer.render("evil", record("inactive"), None, NOW)


class TestWhatLeaves:
    def message(self) -> Outgoing:
        return Outgoing(
            "p_1:inactive:30d:1|email", "p_1:inactive:30d:1", "p_1", "inactive", "email",
            "inactive.en.txt", "en", "Subject", "Body\n", "ada@example.com", record("inactive"),
        )  # fmt: skip

    def test_message_id_and_idempotency_key_repeat_per_delivery(self) -> None:
        """The same delivery gets the same Message-ID and key on every attempt."""
        a, b = self.message(), self.message()
        mail = build_email(a, "pulse@example.com")
        assert a.message_id == b.message_id == mail["Message-ID"]
        assert "auto-generated" == mail["Auto-Submitted"]

    def test_presets_shape_the_body(self) -> None:
        """Slack gets text, Teams a MessageCard, generic the flag and the person's pseudonym."""
        m = self.message()
        assert {"text"} == set(payload(m, "slack"))
        assert "MessageCard" == payload(m, "teams")["@type"]
        generic = payload(m, "generic")
        assert ("p_1", "esn.nudge.v1") == (generic["person"], generic["schema"])
        assert "ada@example.com" not in str(generic)

    def test_a_servers_message_loses_addresses_and_secrets(self) -> None:
        """A 550 naming the recipient, or a URL with a token, is recorded without them."""
        text = scrub(
            "550 5.1.1 <ada@example.com>: no such user at https://h/T0K3N", "https://h/T0K3N"
        )
        assert "ada@" not in text and "T0K3N" not in text
        assert "a***@example.com" == masked("ada@example.com")


class TestEffect:
    def test_shares_over_whole_windows_only(self) -> None:
        """A decision counts in a window once the window has passed; reactivations within it
        count as active again."""
        day = DAY_MS
        now = 100 * day
        entries = [
            {"group": "nudged", "decided": 10 * day, "reactivated": 12 * day},
            {"group": "nudged", "decided": 10 * day, "reactivated": 30 * day},
            {"group": "nudged", "decided": 10 * day, "reactivated": None},
            {"group": "not_nudged", "decided": 10 * day, "reactivated": None},
            {"group": "not_nudged", "decided": 95 * day, "reactivated": 96 * day},
            {"group": "cancelled", "decided": None, "reactivated": 11 * day},
        ]
        figure = effect(entries, now)
        seven, thirty = figure["windows"]["7d"], figure["windows"]["30d"]
        assert (3, 1, 0.3333) == tuple(
            seven["nudged"][k] for k in ("flags", "active_again", "share")
        )
        assert (1, 0) == (seven["not_nudged"]["flags"], seven["not_nudged"]["active_again"])
        assert (2, 0.6667) == (thirty["nudged"]["active_again"], thirty["nudged"]["share"])
        assert 0.6667 == thirty["difference"]
        assert None is effect([], now)["windows"]["7d"]["nudged"]["share"]


class TestShippedRules:
    def test_compose_and_kubernetes_rules_load(self, tmp_path: Path) -> None:
        """The rules shipped with Compose and the Kubernetes ConfigMap are valid."""
        import yaml

        repo = Path(__file__).resolve().parents[2]
        assert load_rules(repo / "deploy/docker/nudge-rules.toml").channels["email"].daily_cap
        docs = yaml.safe_load_all((repo / "deploy/k8s/nudge.yaml").read_text())
        config = next(d for d in docs if d["kind"] == "ConfigMap")
        (tmp_path / "opt-out.txt").write_text(config["data"]["opt-out.txt"])
        assert ["never_active", "inactive"] == [
            r.kind for r in rules(tmp_path, config["data"]["rules.toml"]).rules
        ]


class TestSettingsDocumented:
    def test_every_nudge_setting_is_in_the_operations_page(self) -> None:
        """docs/operations/nudges.md names every ESN_NUDGE_* variable in its table."""
        from stream.nudge.settings import NudgeSettings

        page = (Path(__file__).resolve().parents[2] / "docs/operations/nudges.md").read_text()
        for name in NudgeSettings.model_fields:
            assert f"`ESN_NUDGE_{name.upper()}`" in page, name


class TestPublishedRecords:
    def test_the_publishers_records_are_taken_as_they_are(self, tmp_path: Path) -> None:
        """Records made by stream/flags/records.py (at_risk included) plan as expected."""
        from stream.flags.machine import Transition
        from stream.flags.records import flag_record

        day = 86_400_000
        at = NOW - 3_600_000
        made = {
            kind: flag_record(
                Transition(at, "p_1", kind, last_seen_ms=at - 40 * day, created_ms=0, **extra),
                None,
                {"owner": ["c1"], "member": [], "follower": []},
            )
            for kind, extra in (
                ("inactive", {"threshold_ms": 30 * day}),
                ("at_risk", {"at_risk_ms": at, "active_days": 20}),
                ("reactivated", {"away_ms": 40 * day}),
            )
        }
        r = rules(tmp_path)
        assert 1 == len(intake.plan(made["inactive"], r, NOW)["deliveries"])
        assert 2 == len(intake.plan(made["at_risk"], r, NOW)["deliveries"])
        assert intake.plan(made["reactivated"], r, NOW)["ends"]
        message = Renderer(r).render("inactive", made["at_risk"], {"name": "Ada"}, NOW)
        assert "40 days ago" in message.body and "c1 (owner)" in message.body
