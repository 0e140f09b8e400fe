"""The true, heterogeneous effect of each catalogue action on an account's hidden state.

The simulation applies these when an action is taken, and the truth applies them at a cutoff to
measure each action's exact effect on the 90-day probabilities: one implementation for both.
Most actions help only the accounts whose problem they address; `upgrade_offer` can backfire on
unhealthy accounts; `reference_ask` does nothing, a natural placebo.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from simulate.dynamics import State, engagement, sigmoid, utilisation
from simulate.population import ENTERPRISE, Traits

#: days before the renewal within which a QBR's value case still counts at the renewal
QBR_WINDOW_DAYS = 120


def _office_hours(tr: Traits, s: State, to_renewal: np.ndarray) -> State:
    return s.replace(damage=s.damage * 0.4)


def _exec_call(tr: Traits, s: State, to_renewal: np.ndarray) -> State:
    gap = np.maximum(0.0, 0.8 * tr.sponsor + 0.2 - s.sponsor)
    strength = np.where(tr.tier == ENTERPRISE, 0.8, 0.55)
    return s.replace(sponsor=s.sponsor + strength * gap)


def _hypercare(tr: Traits, s: State, to_renewal: np.ndarray) -> State:
    stuck = s.stalled * (s.progress < 1.0)
    return s.replace(stalled=s.stalled - stuck, progress=np.minimum(1.0, s.progress + 0.2 * stuck))


def _integration_assist(tr: Traits, s: State, to_renewal: np.ndarray) -> State:
    return s.replace(failing=s.failing * 0.1)


def _training(tr: Traits, s: State, to_renewal: np.ndarray) -> State:
    return s.replace(adopt=s.adopt + 0.9 * sigmoid(-2.0 * (engagement(s) + 0.3)))


def _qbr(tr: Traits, s: State, to_renewal: np.ndarray) -> State:
    due = (to_renewal > 0) & (to_renewal <= QBR_WINDOW_DAYS)
    return s.replace(qbr=np.where(due, np.maximum(s.qbr, 0.5 + 0.5 * sigmoid(-engagement(s))), s.qbr))


def _health_check(tr: Traits, s: State, to_renewal: np.ndarray) -> State:
    at_risk = sigmoid(-2.0 * (engagement(s) + 0.5))
    return s.replace(core_engagement=s.core_engagement + 0.3 * at_risk, sponsor=s.sponsor + 0.2 * at_risk)


def _nudge(tr: Traits, s: State, to_renewal: np.ndarray) -> State:
    return s.replace(adopt=s.adopt + 0.08)


def _billing(tr: Traits, s: State, to_renewal: np.ndarray) -> State:
    return s.replace(pay=s.pay * 0.15)


def _save_offer(tr: Traits, s: State, to_renewal: np.ndarray) -> State:
    return s.replace(save=s.save + 1.3)


def _upgrade_offer(tr: Traits, s: State, to_renewal: np.ndarray) -> State:
    near_limit = sigmoid(12.0 * (utilisation(s) - 0.8))
    unhealthy = sigmoid(-3.0 * (engagement(s) + 0.4))
    return s.replace(upsell=s.upsell + 1.4 * near_limit, annoy=s.annoy + 0.9 * unhealthy)


def _reference_ask(tr: Traits, s: State, to_renewal: np.ndarray) -> State:
    return s


#: what one action does to the hidden state: (traits, state, days to renewal) -> the state right after
StateChange = Callable[[Traits, State, np.ndarray], State]

EFFECTS: dict[str, StateChange] = {
    "office_hours_invite": _office_hours,
    "exec_sponsor_call": _exec_call,
    "hypercare_onboarding": _hypercare,
    "integration_assist": _integration_assist,
    "training_session": _training,
    "qbr_roi_review": _qbr,
    "health_check_call": _health_check,
    "in_app_nudge": _nudge,
    "billing_outreach": _billing,
    "save_offer": _save_offer,
    "upgrade_offer": _upgrade_offer,
    "reference_ask": _reference_ask,
}


def apply_action(action: str, tr: Traits, s: State, to_renewal: np.ndarray) -> State:
    """The state right after `action` is taken; `to_renewal` is days until the renewal date."""
    return EFFECTS[action](tr, s, to_renewal)
