"""The time-to-event learner: a discrete-time hazard model of churn, the classifier's challenger.

The label horizon is cut into equal intervals, and each labelled row becomes one row per interval it entered
still a customer (person-period rows): 1 in the interval its churn falls in, 0 in the ones before. LightGBM
learns one score f(x) for every interval on top of each interval's baseline log-odds a_k (its init score), so
the hazard in interval k is expit(a_k + f(x)): proportional odds, the discrete-time analogue of Cox's model.

The chance of churning within the horizon, 1 - prod_k (1 - expit(a_k + f(x))), rises with f(x) alone, so the
booster ranks accounts as the classifier's does, and the same calibrator, TreeSHAP reasons and serving code
apply unchanged: only the fitting differs. What it adds: a churn on day 5 and one on day 85 are the same
positive to the classifier, while the hazard model learns from when, and a row that renews on day 80 taught
it that the account lasted two intervals.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

#: the prior that keeps an interval with no churn (or no rows) at a finite baseline: half an event in one row
PRIOR_EVENTS, PRIOR_ROWS = 0.5, 1.0


@dataclass(frozen=True)
class PersonPeriods:
    """Labelled rows expanded to one row per interval each was at risk in."""

    #: position of each person-period row's source row
    source: np.ndarray
    #: the interval, 0 for the first after the cutoff
    interval: np.ndarray
    #: 1 where the source row churned in this interval
    event: np.ndarray


def person_periods(days_to_event: np.ndarray, horizon_days: int, intervals: int) -> PersonPeriods:
    """Each row at risk from the cutoff until the interval of its churn (NaN: no churn, every interval). A
    churn on the horizon's last day falls in the last interval."""
    width = horizon_days / intervals
    churned = ~np.isnan(days_to_event)
    at = np.where(churned, np.floor(np.nan_to_num(days_to_event) / width), intervals - 1)
    last = np.clip(at, 0, intervals - 1).astype(np.int64)
    counts = last + 1
    source = np.repeat(np.arange(len(days_to_event)), counts)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    interval = np.arange(len(source)) - starts
    event = (churned[source] & (interval == last[source])).astype(np.int8)
    return PersonPeriods(source, interval, event)


def interval_log_odds(periods: PersonPeriods, intervals: int) -> np.ndarray:
    """Each interval's baseline a_k: the log-odds of its share of churns among the rows at risk in it."""
    at_risk = np.bincount(periods.interval, minlength=intervals)
    events = np.bincount(periods.interval, weights=periods.event, minlength=intervals)
    hazard = (events + PRIOR_EVENTS) / (at_risk + PRIOR_ROWS)
    return np.log(hazard / (1.0 - hazard))


def hazard_rows(
    matrix: pd.DataFrame, days_to_event: np.ndarray, horizon_days: int, intervals: int
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The person-period training rows of `matrix` (a model matrix): features, 0/1 events and each row's
    init score, its interval's baseline log-odds."""
    periods = person_periods(days_to_event, horizon_days, intervals)
    baseline = interval_log_odds(periods, intervals)
    rows = matrix.iloc[periods.source].reset_index(drop=True)
    return rows, periods.event, baseline[periods.interval]
