"""Bar charts drawn on the server as inline SVG: no script, readable on a phone (it scales to the page
width; below 40rem /static/portal.css draws its labels larger and hides every other one, the "minor"
ones, so that those left stay legible and apart), and accessible: the chart is an image with a title and
a description that states the figures, each bar has its own tooltip, and pages put the same figures in a
table beside it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from markupsafe import Markup, escape

from jaif.web.display import compact, measure, number

WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 64, 8, 12, 34  # room for the larger labels of a phone (portal.css)
ROW = 56  # the height of one labelled bar of a category chart


def shown(value: float, unit: str) -> str:
    """A figure as the charts and tables show it: whole tokens, GPU-hours to 2 decimals, measured
    quantities (kWh, kg CO2) to about 3 significant digits."""
    if unit == "tokens":
        return number(value)
    if unit == "GPU-hours":
        return number(value, 2)
    return measure(value)


@dataclass(frozen=True)
class Series:
    """One value per day, oldest first, with the days without usage filled in as 0."""

    days: list[date]
    values: list[float]
    unit: str

    @property
    def total(self) -> float:
        return sum(self.values)

    @property
    def peak(self) -> float:
        return max(self.values, default=0.0)


def daily(per_day: Mapping[date, float], *, first: date, last: date, unit: str) -> Series:
    """The series from ``first`` to ``last`` (both included) of ``per_day``, 0 where a day has nothing."""
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    return Series(days=days, values=[float(per_day.get(d, 0.0)) for d in days], unit=unit)


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5 or 5 times a power of ten that is at least ``value`` (axis top)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power


def _grid(top: float, plot_h: float) -> list[str]:
    lines = []
    for i in range(5):
        share = i / 4
        y = TOP + plot_h * (1 - share)
        minor = ' class="minor"' if i % 2 else ""  # 0, half and the top stay on a phone
        lines.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" class="grid"/>')
        label = escape(compact(top * share))
        lines.append(f'<text x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end"{minor}>{label}</text>')
    return lines


def _bars(series: Series, top: float, plot_h: float) -> list[str]:
    count = max(1, len(series.days))
    slot = (WIDTH - LEFT - RIGHT) / count
    bar_w = max(1.0, slot * 0.75)
    label_every = max(1, math.ceil(count / 7))  # at most 7 day labels: they do not touch on a phone
    unit = str(escape(series.unit))  # days and figures need no escaping: digits, dashes and commas
    parts = []
    for i, (day, value) in enumerate(zip(series.days, series.values, strict=True)):
        h = plot_h * value / top if top else 0
        x = LEFT + i * slot + (slot - bar_w) / 2
        parts.append(
            f'<rect x="{x:.1f}" y="{TOP + plot_h - h:.1f}" width="{bar_w:.1f}" height="{max(h, 0):.1f}">'
            f"<title>{day.isoformat()}: {escape(shown(value, series.unit))} {unit}</title></rect>"
        )
        if i % label_every == 0:
            minor = ' class="minor"' if (i // label_every) % 2 else ""  # every other day label stays on a phone
            parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{HEIGHT - 8}" text-anchor="middle"{minor}>'
                         f"{day:%d %b}</text>")
    return parts


def bar_chart(series: Series, *, title: str, chart_id: str) -> Markup:
    """An inline SVG bar chart of ``series``; ``chart_id`` makes the ids of its title and description."""
    plot_h = HEIGHT - TOP - BOTTOM
    top = nice_ceiling(series.peak)
    span = f"{series.days[0]:%Y-%m-%d} to {series.days[-1]:%Y-%m-%d}" if series.days else "no days"
    desc = (
        f"{shown(series.total, series.unit)} {series.unit} in all from {span}; "
        f"the busiest day had {shown(series.peak, series.unit)} {series.unit}."
    )
    body = "".join(_grid(top, plot_h) + _bars(series, top, plot_h))
    return Markup(
        f'<svg class="chart" id="{escape(chart_id)}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{escape(chart_id)}-title {escape(chart_id)}-desc" preserveAspectRatio="xMidYMid meet">'
        f'<title id="{escape(chart_id)}-title">{escape(title)}</title>'
        f'<desc id="{escape(chart_id)}-desc">{escape(desc)}</desc>{body}</svg>'
    )


def category_chart(items: list[tuple[str, float]], *, unit: str, title: str, chart_id: str) -> Markup:
    """An inline SVG chart of one horizontal bar per item (label, value), largest scale first: each label
    sits above its bar across the whole width, so that long names stay readable on a phone."""
    top = nice_ceiling(max((v for _, v in items), default=0.0))
    height = TOP + ROW * max(1, len(items))
    parts = []
    for i, (label, value) in enumerate(items):
        y = TOP + i * ROW
        w = (WIDTH - RIGHT) * value / top if top else 0
        figure = f"{shown(value, unit)} {unit}"
        parts.append(f'<text x="0" y="{y + 18}">{escape(label)}: {escape(figure)}</text>')
        parts.append(f'<rect x="0" y="{y + 26}" width="{max(w, 0):.1f}" height="18">'
                     f"<title>{escape(label)}: {escape(figure)}</title></rect>")
    total = sum(v for _, v in items)
    desc = f"{shown(total, unit)} {unit} in all, over {len(items)} item{'s' if len(items) != 1 else ''}."
    cid = escape(chart_id)
    return Markup(
        f'<svg class="chart bars" id="{cid}" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-labelledby="{cid}-title {cid}-desc" preserveAspectRatio="xMinYMin meet">'
        f'<title id="{cid}-title">{escape(title)}</title><desc id="{cid}-desc">{escape(desc)}</desc>'
        f'{"".join(parts)}</svg>'
    )
