"""Figures rounded for reading and for spreadsheets: kWh and kg CO2 to about three significant digits on
pages and charts, floats rounded in CSV cells, never a float's binary noise (0.017499999999999998)."""

from __future__ import annotations

from datetime import date

import pytest

from jaif.metering import charts
from jaif.web.display import figure, measure
from jaif.web.download import cell, csv_response, csv_text, figure_cell

NOISY = 0.1 * 0.175  # 0.017499999999999998


def test_the_noise_is_real():
    assert repr(NOISY) == "0.017499999999999998"


@pytest.mark.parametrize(("value", "shown"), [
    (None, "—"), (0, "0"), (0.0, "0"), (NOISY, "0.0175"), (0.01226, "0.0123"), (0.3, "0.3"), (2.51225, "2.51"),
    (2.8, "2.8"), (99.999, "100"), (1234.5, "1,234"), (103.5, "104"), (1e-9, "< 0.000001"), (-0.5, "-0.5"),
])
def test_measure_keeps_about_three_significant_digits(value, shown):
    assert measure(value) == shown


def test_figure_drops_trailing_zeros():
    assert (figure(50.0), figure(NOISY), figure(1234.5), figure(None)) == ("50", "0.02", "1,234.5", "—")


def test_csv_cells_are_rounded_whole_or_defused():
    assert (figure_cell(NOISY), figure_cell(100.0), figure_cell(0.1 + 0.2), figure_cell(2.5, 0)) == (
        0.0175, 100, 0.3, 2)
    assert (cell(None), cell(3), cell("=1+1"), cell("-x"), cell("plain")) == ("", 3, "'=1+1", "'-x", "plain")
    text = csv_text(("a", "b"), [(NOISY, "@sum"), (0.1 + 0.2, 7)])
    assert text.splitlines() == ["a,b", "0.0175,'@sum", "0.3,7"]


def test_charts_show_kwh_without_noise():
    series = charts.daily({date(2025, 3, 2): NOISY}, first=date(2025, 3, 1), last=date(2025, 3, 2), unit="kWh")
    svg = charts.bar_chart(series, title="Energy", chart_id="e")
    assert "2025-03-02: 0.0175 kWh" in svg and "0.0175 kWh in all" in svg and "0.017499" not in svg
    assert (charts.shown(NOISY, "tokens"), charts.shown(NOISY, "GPU-hours"), charts.shown(NOISY, "kg CO2")) == (
        "0", "0.02", "0.0175")


def test_a_category_chart_labels_each_bar_and_escapes_names():
    svg = charts.category_chart([("<b>Call</b>", 2.0), ("Other", NOISY)], unit="kWh", title="Energy per call",
                                chart_id="calls")
    assert svg.count("<rect") == 2 and "&lt;b&gt;Call&lt;/b&gt;: 2 kWh" in svg and "<b>" not in svg
    assert "Other: 0.0175 kWh" in svg and "2.02 kWh in all, over 2 items." in svg
    assert 'width="712.0"' in svg  # the largest bar, 2 kWh of an axis ending at 2, spans the width
    empty = charts.category_chart([], unit="kWh", title="None", chart_id="none")
    assert "<rect" not in empty and "0 kWh in all, over 0 items." in empty


def test_a_download_is_named_safely():
    answer = csv_response('usage-"a"\r\nb.csv', ("a",), [(1,)])
    assert answer.headers["content-disposition"] == 'attachment; filename="usage-_a___b.csv"'
    assert answer.headers["content-type"] == "text/csv; charset=utf-8" and answer.body == b"a\r\n1\r\n"
