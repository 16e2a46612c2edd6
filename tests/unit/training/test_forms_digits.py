"""The operator's training form: what a person may type is an error beside its field, never a 500."""

from __future__ import annotations

from datetime import UTC, datetime

from jaif.training import forms


def test_a_superscript_digit_is_an_error_and_an_offset_is_kept():
    form = {"title": "Intro", "starts_at": "2026-03-01T09:00+02:00", "ends_at": "2026-03-01 17:00", "seats": "²"}
    data, errors = forms.parse(form)  # "²".isdigit() is True, and int("²") raised: a 500 before
    assert "seats" in errors
    assert data["starts_at"] == datetime(2026, 3, 1, 7, 0, tzinfo=UTC)  # 09:00 at +02:00, not 09:00 UTC
    assert data["ends_at"] == datetime(2026, 3, 1, 17, 0, tzinfo=UTC)  # no offset: UTC, as the form says
