"""Inline SVG line charts: no script and no CDN, readable by a screen reader through its title and
description (the page also gives the numbers as a table)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from html import escape

WIDTH, HEIGHT = 420, 160
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 12, 28


def line_chart(
    chart_id: str,
    title: str,
    points: Sequence[tuple[datetime, float | None]],
    *,
    low: float,
    high: float,
    label: str,
) -> str:
    """A line over the points that have a value, y from `low` to `high`, each point labelled with
    `label.format(value)`; an empty string when fewer than two points have one."""
    known = [(when, value) for when, value in points if value is not None]
    if len(known) < 2:
        return ""
    span = (high - low) or 1.0
    inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = inner_w / (len(known) - 1)

    def y(value: float) -> float:
        return TOP + inner_h * (1 - (min(max(value, low), high) - low) / span)

    xy = [(LEFT + i * step, y(value)) for i, (_, value) in enumerate(known)]
    path = " ".join(f"{x:.1f},{yy:.1f}" for x, yy in xy)
    described = "; ".join(f"{when:%b %Y}: {label.format(value)}" for when, value in known)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{chart_id}-title {chart_id}-desc" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<desc id="{chart_id}-desc">{escape(described)}</desc>',
    ]
    for value in (low, (low + high) / 2, high):
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(value):.1f}" y2="{y(value):.1f}"/>'
            f'<text class="axis" x="{LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end">'
            f"{escape(label.format(value))}</text>"
        )
    parts.append(f'<polyline class="line" points="{path}"/>')
    for (when, value), (x, yy) in zip(known, xy, strict=True):
        parts.append(
            f'<circle class="dot" cx="{x:.1f}" cy="{yy:.1f}" r="3.5"><title>'
            f"{when:%Y-%m-%d}: {escape(label.format(value))}</title></circle>"
            f'<text class="axis" x="{x:.1f}" y="{HEIGHT - 8}" text-anchor="middle">{when:%b}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
