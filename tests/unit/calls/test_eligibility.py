"""Eligibility rules of calls: country of the applicant's organisation, its sector, the call's window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jaif.calls.eligibility import (
    ELIGIBLE_BY_DEFAULT,
    EU_MEMBER_STATES,
    HORIZON_EUROPE_ASSOCIATED,
    normalise_country,
    organisation_problems,
    window_problem,
)

NOW = datetime(2026, 3, 2, 12, tzinfo=UTC)


def test_the_lists():
    assert len(EU_MEMBER_STATES) == 27
    assert not EU_MEMBER_STATES & HORIZON_EUROPE_ASSOCIATED
    assert {"NO", "IS", "GB", "CH", "UA", "IL", "TR"} <= HORIZON_EUROPE_ASSOCIATED
    assert "US" not in ELIGIBLE_BY_DEFAULT and "CN" not in ELIGIBLE_BY_DEFAULT


@pytest.mark.parametrize("country", ["DE", "FR", "PL", "NO", "CH", "GB", "UK", "EL", "gr", " de "])
def test_eu_and_associated_countries_are_eligible_by_default(country):
    assert organisation_problems(
        name="Uni", country=country, sector="academia", eligible_countries=None, eligible_sectors=[]
    ) == []


@pytest.mark.parametrize("country", ["US", "CN", "IN", "BR", "RU"])
def test_other_countries_are_refused_with_the_reason(country):
    [problem] = organisation_problems(
        name="Acme", country=country, sector="industry", eligible_countries=None, eligible_sectors=[]
    )
    assert problem.field == "organisation"
    assert f"Acme is based in {country}" in problem.message
    assert "neither an EU member state nor a country associated to Horizon Europe" in problem.message


def test_a_call_may_narrow_the_countries():
    assert organisation_problems(
        name="Uni", country="DE", sector="academia", eligible_countries=["DE", "AT"], eligible_sectors=[]
    ) == []
    [problem] = organisation_problems(
        name="Uni", country="FR", sector="academia", eligible_countries=["DE", "AT"], eligible_sectors=[]
    )
    assert "open to organisations in AT, DE only" in problem.message


def test_sector_must_be_allowed():
    assert organisation_problems(
        name="Firm", country="DE", sector="startup", eligible_countries=None, eligible_sectors=["startup", "sme"]
    ) == []
    [problem] = organisation_problems(
        name="BigCo", country="DE", sector="industry", eligible_countries=None, eligible_sectors=["startup", "sme"]
    )
    assert problem.message == "BigCo is in the industry sector; this call is open to startup, sme only"


def test_country_and_sector_both_reported():
    found = organisation_problems(
        name="X", country="US", sector="industry", eligible_countries=None, eligible_sectors=["academia"]
    )
    assert len(found) == 2


def test_the_call_window():
    assert window_problem(NOW - timedelta(days=1), None, True, NOW) is None
    assert window_problem(NOW - timedelta(days=1), NOW + timedelta(days=1), True, NOW) is None
    assert "closed" in window_problem(NOW - timedelta(days=1), None, False, NOW).message
    assert "opens on 2026-03-03" in window_problem(NOW + timedelta(days=1), None, True, NOW).message
    assert "closed on 2026-03-01" in window_problem(NOW - timedelta(days=9), NOW - timedelta(days=1), True, NOW).message
    assert window_problem(NOW - timedelta(days=1), None, False, NOW).field == "call_id"


def test_normalise_country():
    assert normalise_country(" el ") == "GR"
    assert normalise_country("UK") == "GB"
    assert normalise_country("de") == "DE"
