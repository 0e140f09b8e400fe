"""digest-WEEK.html: one page an email client shows as is: inline styles, tables, no scripts, no images,
no links to fetch, readable 600 px wide."""

from __future__ import annotations

from core.templates import page_templates
from products.digest.schema import DigestReport
from products.monitor.impact import money

#: accounts listed per move on the page (all of them are in the JSON)
LISTED = 20

_ENV = page_templates("products.digest")
_ENV.filters["money"] = lambda v: "–" if v is None else money(v)
_ENV.filters["signed"] = lambda v: "–" if v is None else ("+" if v > 0 else "") + money(v)
_ENV.filters["pct"] = lambda v: "–" if v is None else f"{100 * v:.0f}%"
_ENV.filters["words"] = lambda v: "–" if v is None else str(v).replace("_", " ")


def render(report: DigestReport) -> str:
    return _ENV.get_template("digest.html").render(report=report, listed=LISTED)
