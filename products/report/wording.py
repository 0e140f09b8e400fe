"""Effects in words, in the units people read them in: shared by the report's verdicts and summaries
and by its HTML page.
"""

from __future__ import annotations

import math


def amount(value: float | None, binary: bool) -> str:
    """An effect as people read it: percentage points on a 0/1 outcome, else the outcome's unit."""
    if value is None or not math.isfinite(value):
        return "n/a"
    if binary:
        return f"{value * 100:+.1f} pp".replace("-", "−")
    return f"{value:+.3g}".replace("-", "−")


def interval(low: float | None, high: float | None, binary: bool) -> str:
    """An interval as people read it: "−1.2 pp to +3.4 pp"."""
    return f"{amount(low, binary)} to {amount(high, binary)}"


def confidence_level(share: float) -> str:
    """A confidence level as people write it: 95%, 99.6%."""
    return f"{share:.1%}".replace(".0%", "%")
