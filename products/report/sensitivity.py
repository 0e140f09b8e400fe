"""Sensitivity to an unmeasured confounder: the E-value (VanderWeele & Ding 2017) of each effect, and the
sentence that says what it means.

The E-value is the smallest strength of association, as a risk ratio, that one unmeasured factor would
need with both the treatment and the outcome, beyond what the measured columns explain, to move the
effect to none: at RR = the effect's risk ratio (inverted below 1), E = RR + sqrt(RR (RR - 1)). The
interval's E-value does the same for the limit nearer no effect (1 when the interval holds none). It
assumes nothing about the factor's distribution (Ding & VanderWeele 2016's bounding factor), which is why
it is the report's choice; docs/methods/causal-report.md says why over the alternatives.

A 0/1 outcome's effect becomes a risk ratio against the doubly robust estimate of the untreated risk p0:
(p0 + effect) / p0, each interval limit likewise with p0 held fixed. A numeric outcome's effect is first a
standardised difference d (the effect over the outcome's pooled spread), then approximately the risk
ratio exp(0.91 d) (VanderWeele & Ding 2017, for an outcome roughly normal within the arms).
"""

from __future__ import annotations

import math

from products.report.schema import Sensitivity, finite
from training.causal import doubly_robust

#: a standardised mean difference d corresponds to a risk ratio of about exp(D_TO_LOG_RR * d)
D_TO_LOG_RR = 0.91
METHOD = (
    "E-value (VanderWeele & Ding 2017): the risk ratio an unmeasured factor would need with both the "
    "treatment and the outcome, beyond the measured columns, to explain the effect (or its interval's "
    "limit nearer none) away; a numeric outcome's effect converted by exp(0.91 d)"
)


def e_value(risk_ratio: float) -> float:
    """RR + sqrt(RR (RR - 1)), with a protective risk ratio below 1 taken as 1/RR."""
    rr = risk_ratio if risk_ratio >= 1.0 else 1.0 / risk_ratio
    return rr + math.sqrt(rr * (rr - 1.0))


def interval_e_value(low: float, high: float) -> float:
    """The E-value of the interval's limit nearer 1 (risk ratios), 1 when the interval holds 1: how strong
    a factor would have to be for the data to no longer tell the effect from none."""
    if low <= 1.0 <= high:
        return 1.0
    return e_value(low if low > 1.0 else high)


def risk_ratio(difference: float, untreated_mean: float | None, spread: float | None) -> float | None:
    """An effect (or an interval limit) as a risk ratio: against the untreated risk `untreated_mean` on a
    0/1 outcome, from the standardised difference over `spread` on a numeric one (give one of the two).
    None where no positive ratio expresses it (a risk the estimate puts at or below 0)."""
    if untreated_mean is not None:
        ratio = (untreated_mean + difference) / untreated_mean if untreated_mean > 0 else math.nan
    else:
        ratio = math.exp(D_TO_LOG_RR * difference / spread) if spread and spread > 0 else math.nan
    return ratio if math.isfinite(ratio) and ratio > 0 else None


def sensitivity(
    treatment: str,
    outcome: str,
    effect: doubly_robust.Effect,
    untreated_mean: float | None,
    spread: float | None,
) -> Sensitivity:
    """The E-values of `effect` and of its interval, with the sentence; `untreated_mean` and `spread` as
    in `risk_ratio`."""
    point, low, high = (
        risk_ratio(v, untreated_mean, spread) for v in (effect.ate, effect.ci_low, effect.ci_high)
    )
    if point is None or high is None:
        return Sensitivity(
            treatment=treatment,
            outcome=outcome,
            risk_ratio=None,
            e_value=None,
            e_value_interval=None,
            sentence="No sensitivity figure: the estimate puts a risk at or below 0, which no risk ratio "
            "expresses.",
        )
    # a lower limit no ratio expresses is below every ratio: the interval holds 1 if it reaches above it
    strength, interval_strength = e_value(point), interval_e_value(low or 0.0, high)
    return Sensitivity(
        treatment=treatment,
        outcome=outcome,
        risk_ratio=finite(point),
        e_value=finite(strength),
        e_value_interval=finite(interval_strength),
        sentence=sentence(
            treatment, outcome, untreated_mean is not None, effect.ate, strength, interval_strength
        ),
    )


def sentence(
    treatment: str, outcome: str, binary: bool, ate: float, strength: float, interval_strength: float
) -> str:
    """What the E-values mean, in words: how strongly an unmeasured factor would have to push who gets
    the treatment and the outcome to erase the effect, and to make it indistinguishable from none."""
    s = f"{strength:.1f}x"
    getting = f"the chance of getting {treatment}"
    if not binary:
        push = f"raise {getting} by {s} and move {outcome} as much as a {s} change in risk would"
    elif ate >= 0:
        push = f"raise both {getting} and the chance of {outcome} by {s}"
    else:
        push = f"raise {getting} by {s} and cut the chance of {outcome} by {s}"
    start = f"An unmeasured factor would have to {push} (beyond what the measured columns explain) to erase "
    if interval_strength > 1.0:
        return start + f"this effect; by {interval_strength:.1f}x to make it indistinguishable from none."
    return start + "this estimate; its interval already includes no effect."
