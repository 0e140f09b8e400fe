"""What each kind of drift changes, for a monitor to find; see `Drift` in config.py.

`release`: from the date on, a product release retires two features. `reports` is merged into
`dashboards` and `alerts` into `pipelines` (a core feature), so every event naming a feature
(`feature.used`, `error.raised`, `nudge.sent`, `nudge.acted`) names the one that absorbed it, and the
new interface logs each step of an action: a `feature.used` event counts half as many uses again (rounded
up). It changes what the telemetry says, not what customers do: sessions, the hidden state, the CS team,
churn and expansion, and every random draw, stay exactly as without the drift. Adoption features move
(distinct and core features used, feature uses, the core-feature share, hence the health score), so a
model trained before the date reads the same behaviour as different: an input drift, not a change in who
churns.

`tier_mix`: accounts whose contract starts on or after the date come mostly as small business and trial
accounts (the ARR, seats, plan and CSM to match); accounts starting earlier are unchanged. In-window starts
are about 30% of the accounts, spread over the run, so those after the date are a few per cent of the book
a month: the book's tier mix barely moves, the mix of new accounts moves at once.

Neither takes a draw from a chunk's stream: the release is a fixed relabelling, so the run is otherwise
the undrifted one; the new tiers come from their own stream (seed, DRIFT_STREAM, chunk), so the
population is otherwise the undrifted one (the daily draws that follow then differ, as the moved accounts'
states do).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from simulate.config import Drift, SimConfig
from simulate.events import CORE_FEATURES, FEATURES, Block, code
from simulate.population import TIER_SHARE, TIERS, Population, retier

#: A seed-stream tag for the drift's draws, distinct from chunk indices, the calendar's and the holdout's.
DRIFT_STREAM = 1 << 42
#: features the release retires, and the feature that takes over their use
RETIRED = {"reports": "dashboards", "alerts": "pipelines"}
#: uses a released `feature.used` event counts per use it counted before (rounded up)
USE_COUNT_FACTOR = 1.5
#: the tier mix of accounts starting from a `tier_mix` drift's date, in TIERS order
TIER_SHARE_AFTER = (0.01, 0.04, 0.35, 0.60)

_MOVED = np.array([code("feature", RETIRED.get(f, f)) for f in FEATURES])


def release_day(config: SimConfig) -> int | None:
    """The first day the released product logs events, or None when no release drift is configured."""
    drift = config.drift
    return None if drift is None or drift.kind != "release" else (drift.on - config.start).days


def released(blocks: list[Block]) -> list[Block]:
    """A day's events as the released product logs them."""
    return [_released(b) for b in blocks]


def _released(block: Block) -> Block:
    feature = block.props.get("feature")
    if feature is None:
        return block
    moved = np.where(feature >= 0, _MOVED[np.maximum(feature, 0)], -1)
    props = {**block.props, "feature": moved}
    if block.event_type == "feature.used":
        props["count"] = np.ceil(USE_COUNT_FACTOR * block.props["count"]).astype(np.int64)
        props["core"] = CORE_FEATURES[moved].astype(np.int64)
    return replace(block, props=props)


def drifted_population(config: SimConfig, chunk: int, pop: Population) -> Population:
    """The chunk's population under a `tier_mix` drift (new tiers for the accounts starting from its date);
    `pop` itself otherwise."""
    drift = config.drift
    if drift is None or drift.kind != "tier_mix":
        return pop
    rng = np.random.default_rng([config.seed, DRIFT_STREAM, chunk])
    moved = pop.start_day >= (drift.on - config.start).days
    return retier(rng, pop, moved, TIER_SHARE_AFTER, config.accounts)


def drift_record(drift: Drift) -> dict[str, object]:
    """What `truth/drift.json` says: the kind, the date, and what changed, in words and in names."""
    on = drift.on.isoformat()
    if drift.kind == "release":
        moves = " and ".join(f"'{old}' into '{new}'" for old, new in RETIRED.items())
        return {
            "kind": drift.kind,
            "date": on,
            "description": (
                f"From {on} a product release folds {moves}: events of types feature.used, error.raised, "
                f"nudge.sent and nudge.acted name the feature that absorbed the retired one, and each "
                f"feature.used event counts {USE_COUNT_FACTOR:g} times its uses (rounded up). Sessions, "
                "the hidden state, CS actions, churn and expansion are unchanged."
            ),
            "event_types": ["feature.used", "error.raised", "nudge.sent", "nudge.acted"],
            "retired_features": RETIRED,
            "feature_use_count_factor": USE_COUNT_FACTOR,
        }
    before, after = _shares(TIER_SHARE), _shares(TIER_SHARE_AFTER)
    return {
        "kind": drift.kind,
        "date": on,
        "description": (
            f"Accounts whose contract starts on or after {on} come from a different tier mix ({after}; "
            f"before: {before}), with ARR, seats, plan and CSM drawn for the new tier. Accounts starting "
            "earlier are unchanged."
        ),
        "tier_share_before": dict(zip([t.value for t in TIERS], TIER_SHARE, strict=True)),
        "tier_share_after": dict(zip([t.value for t in TIERS], TIER_SHARE_AFTER, strict=True)),
    }


def _shares(shares: tuple[float, ...]) -> str:
    return ", ".join(f"{t.value} {s:.0%}" for t, s in zip(TIERS, shares, strict=True))
