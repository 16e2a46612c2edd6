"""The pure parts of the pages: the application form's parsing and the SVG charts."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

from jaif.applications import forms as draft_form
from jaif.metering import charts


def test_a_step_saves_the_good_fields_and_names_the_bad_ones():
    parsed = draft_form.parse("resources", {"gpu_hours.booster": "1 000", "gpu_hours.cluster": "-3",
                                            "requested_tokens": "2,500", "duration_months": "x"},
                              partitions=["booster", "cluster"])
    assert parsed.fields == {"requested_tokens": 2500}
    assert set(parsed.errors) == {"gpu_hours.cluster", "duration_months"}


def test_too_long_and_malformed_fields_are_refused_one_by_one():
    parsed = draft_form.parse("proposal", {"title": "t" * 301, "project_name": "no spaces please", "domain": "x",
                                           "abstract": "a"}, partitions=[])
    assert set(parsed.errors) == {"title", "project_name"}
    assert parsed.fields == {"domain": "x", "abstract": "a"}
    team = draft_form.parse("team", {"organisation_choice": "new", "org_name": "", "org_sector": "nope",
                                     "org_country": "Germany", "team": "ada@example.org\nbob"}, partitions=[])
    assert set(team.errors) == {"org_name", "org_sector", "org_country", "team"} and team.fields == {}


def test_a_chart_fills_the_empty_days_and_describes_its_figures():
    series = charts.daily({date(2025, 3, 2): 40.0}, first=date(2025, 3, 1), last=date(2025, 3, 3), unit="tokens")
    assert series.values == [0.0, 40.0, 0.0] and series.total == 40
    svg = charts.bar_chart(series, title="Tokens per day", chart_id="t")
    assert svg.count("<rect") == 3 and "<title id=\"t-title\">Tokens per day</title>" in svg
    assert "40 tokens in all from 2025-03-01 to 2025-03-03" in svg and "2025-03-02: 40 tokens" in svg


def test_the_axis_ends_at_a_round_figure():
    assert [charts.nice_ceiling(v) for v in (0, 0.3, 7, 12, 240, 26_000)] == [1.0, 0.5, 10, 20, 250, 50_000]


def test_every_other_label_of_a_chart_is_minor_so_a_phone_may_leave_it_out():
    """Issue 14 (form polish): on a phone the chart's labels were 5 px high; portal.css draws them larger
    there and hides the "minor" half, so that the rest stay apart."""
    series = charts.daily({}, first=date(2025, 3, 1), last=date(2025, 3, 30), unit="tokens")
    svg = str(charts.bar_chart(series, title="Tokens per day", chart_id="t"))
    days = re.findall(r'<text x="[^"]+" y="[^"]+" text-anchor="middle"( class="minor")?>(\d\d \w{3})</text>', svg)
    # At most 7 day labels (every 5th day of 30), every other one minor.
    assert [day for _minor, day in days] == ["01 Mar", "06 Mar", "11 Mar", "16 Mar", "21 Mar", "26 Mar"]
    assert [bool(minor) for minor, _day in days] == [False, True] * 3
    axis = re.findall(r'text-anchor="end"( class="minor")?>', svg)
    assert [bool(minor) for minor in axis] == [False, True, False, True, False]
    css = Path(charts.__file__).parents[1] / "web" / "static" / "portal.css"
    assert "svg.chart text.minor { display: none; }" in css.read_text()
