"""The uplift ranking's predicted changes and their 95% intervals are the uplift model's own: what
`UpliftModel.scaled` gives at 0 and at -/+ Z95 posterior standard deviations for the account's features and
days-since columns, to the last bit, with a learner in place of an action's share too."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, time

from features.definitions import CATEGORICAL
from features.playbook import eligibility
from features.playbook_file import store_playbook
from features.rows import KEYS, FeatureRows
from features.stored import read_features
from registry.models import VersionInfo
from serving.assess import assess
from serving.ranking import rank
from serving.resources import UpliftChampion
from tests.support.worlds import UpliftWorld
from training.causal import recency
from training.causal.doubly_robust import Z95
from training.causal.learners import BandShares
from training.causal.uplift import UpliftModel


def _with_a_learner(model: UpliftModel) -> UpliftModel:
    """The model with its first usable action ranked on churn by a learner (shares by health band)."""
    action = model.usable()[0]
    column = model.features.index("health_band")
    levels = tuple(model.categories["health_band"])
    shares = {level: -0.05 * (i + 1) for i, level in enumerate(levels)}
    learner = BandShares(column, levels, shares, fallback=-0.02)
    return dataclasses.replace(model, learners={action: learner})


def test_each_ranked_change_and_interval_is_the_models_own(uplift_world: UpliftWorld) -> None:
    store, settings = uplift_world.store, uplift_world.settings
    model = _with_a_learner(uplift_world.result.model)
    champion = UpliftChampion(model, VersionInfo("uplift", "1", None, "models:/m-1", ["champion"], {}))
    learnt = next(iter(model.learners))
    playbook = store_playbook(store, settings)
    frame = read_features(store).to_pandas()
    latest = frame[frame["cutoff"] == frame["cutoff"].max()].head(40)
    as_of = datetime.combine(latest["cutoff"].max().date(), time.max, tzinfo=UTC)
    rows = FeatureRows.from_frame(latest, frozenset(CATEGORICAL))
    compared: set[str] = set()
    for assessment in assess(rows, None, None, settings, as_of):
        verdicts = eligibility(assessment.row, {}, as_of, playbook)
        ranking = rank(assessment, verdicts, {}, as_of, champion, settings.value, playbook)
        days_since = recency.for_account({}, as_of, model.actions)
        values = {**assessment.row, **days_since}
        names = [name for name in values if name not in KEYS]
        text = frozenset(name for name in names if isinstance(values[name], str))
        inputs = model.inputs(
            FeatureRows.build([assessment.account_id], [None], {n: [values[n]] for n in names}, names, text)
        )
        estimate, low, high = (model.scaled(inputs, s) for s in (0.0, -Z95, Z95))
        for candidate in ranking.candidates:
            if candidate.churn is None or candidate.expansion is None:
                continue
            j = model.actions.index(candidate.action)
            for outcome, change in (("churn", candidate.churn), ("expansion", candidate.expansion)):
                assert change.estimate == float(estimate[outcome][0, j])
                assert change.ci_low == float(low[outcome][0, j])
                assert change.ci_high == float(high[outcome][0, j])
            compared.add(candidate.action)
    assert learnt in compared
