"""Every fault of issue 11 on the real stack, each ending exact: no event lost or double-counted,
every flag record on esn.users.flagged.v1 once, esn.seq gapless (tests/chaos/harness.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream.settings import Settings
from stream.stack import LocalStack
from tests.chaos.harness import SCENARIOS, run_scenario

pytestmark = [pytest.mark.integration, pytest.mark.chaos]


@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_the_pipeline_ends_exact_after(
    scenario: str, stack_settings: Settings, chaos_stack: LocalStack, drill_logs: Path
) -> None:
    """The fault strikes mid-stream; once recovered, state and flags equal the oracles."""
    figures = await run_scenario(stack_settings, chaos_stack, drill_logs, scenario)
    print(figures.summary())  # shown with -s or -rA: the drill's figures
    assert figures.flags_expected > 0 and figures.events > 0
    assert figures.recovery_seconds is not None, figures.summary()
    assert figures.exact, figures.summary()
