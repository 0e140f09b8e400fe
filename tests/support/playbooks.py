"""A deployment's own playbook for tests: the built-in file with a new action, the success plan workshop."""

from __future__ import annotations

from pathlib import Path

from core.catalogue import BUILT_IN_PLAYBOOK

#: the built-in playbook's text
TEXT = BUILT_IN_PLAYBOOK.read_text()
#: a new action, eligible where core features go unused, first in the at-risk play
WORKSHOP = """  success_plan_workshop:
    description: core features unused, adoption plan needed
    channel: meeting
    cost_hours: 1.5
    cooldown_days: 30
"""
WORKSHOP_RULE = """  success_plan_workshop:
    any:
      - when: core_features_unused_7d >= 2
        if_true: "{value:.0f} core features unused this week"
    otherwise: Core features in use
"""
STALLED_ALERT = """  - type: adoption_stalled
    title: Adoption stalled
    when: core_features_unused_7d >= 2 AND health_band <> 'healthy'
    evidence: [core_features_unused_7d, health_band]
    actions: [success_plan_workshop, in_app_nudge]
"""


def own(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "playbook.yaml"
    path.write_text(text)
    return path


def with_workshop(text: str = TEXT) -> str:
    """The built-in playbook plus the workshop: an action, its rule, its place in the at-risk play and an
    alert."""
    text = text.replace("actions:\n", "actions:\n" + WORKSHOP, 1)
    text = text.replace("eligibility:\n", "eligibility:\n" + WORKSHOP_RULE, 1)
    text = text.replace(
        "    order: [health_check_call,", "    order: [success_plan_workshop, health_check_call,"
    )
    return text.replace("alerts:\n", "alerts:\n" + STALLED_ALERT, 1)
