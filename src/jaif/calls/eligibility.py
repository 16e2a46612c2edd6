"""Who may apply to a call: where the applicant's organisation is based, its sector, and when.

Principal investigators of EuroHPC AI Factory access calls must be based in an EU member state or in a
country associated to Horizon Europe. A call may narrow this (``eligible_countries``, ``eligible_sectors``).
Every check returns Problems that say, in words for the applicant, why an application is refused.

Sources of the country lists (ISO 3166-1 alpha-2; the EU writes EL for Greece and UK for the United
Kingdom, both accepted here):
- EU member states: the 27 members since 1 February 2020 (europa.eu, "EU countries").
- Horizon Europe associated countries: European Commission, "List of participating countries in
  Horizon Europe" (EU Funding & Tenders portal), as checked in January 2025: association agreements in
  effect for the 20 countries listed by Science|Business on 21 November 2024 (Canada, New Zealand and
  the Republic of Korea for Pillar II only), plus Switzerland, associated from 1 January 2025.
  Review this list when the Commission publishes a new version.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

EU_MEMBER_STATES = frozenset(
    {
        "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU",
        "IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
    }
)

HORIZON_EUROPE_ASSOCIATED = frozenset(
    {
        "AL",  # Albania
        "AM",  # Armenia
        "BA",  # Bosnia and Herzegovina
        "CA",  # Canada (Pillar II)
        "CH",  # Switzerland (from 1 January 2025)
        "FO",  # Faroe Islands
        "GB",  # United Kingdom
        "GE",  # Georgia
        "IL",  # Israel
        "IS",  # Iceland
        "KR",  # Republic of Korea (Pillar II)
        "MD",  # Moldova
        "ME",  # Montenegro
        "MK",  # North Macedonia
        "NO",  # Norway
        "NZ",  # New Zealand (Pillar II)
        "RS",  # Serbia
        "TN",  # Tunisia
        "TR",  # Türkiye
        "UA",  # Ukraine
        "XK",  # Kosovo (user-assigned code; the EU writes XK)
    }
)

ELIGIBLE_BY_DEFAULT = EU_MEMBER_STATES | HORIZON_EUROPE_ASSOCIATED

_EU_SPELLINGS = {"EL": "GR", "UK": "GB"}


def normalise_country(code: str) -> str:
    code = code.strip().upper()
    return _EU_SPELLINGS.get(code, code)


@dataclass(frozen=True, slots=True)
class Problem:
    """Why an application cannot be submitted: the field at fault and what to do about it."""

    field: str
    message: str


def country_problem(country: str, eligible_countries: list[str] | None, *, organisation: str) -> Problem | None:
    code = normalise_country(country)
    if eligible_countries is None:
        if code in ELIGIBLE_BY_DEFAULT:
            return None
        return Problem(
            "organisation",
            f"{organisation} is based in {code}, which is neither an EU member state nor a country associated "
            "to Horizon Europe; principal investigators of this call must be based in one of those",
        )
    allowed = {normalise_country(c) for c in eligible_countries}
    if code in allowed:
        return None
    return Problem(
        "organisation",
        f"{organisation} is based in {code}; this call is open to organisations in {', '.join(sorted(allowed))} only",
    )


def sector_problem(sector: str, eligible_sectors: list[str], *, organisation: str) -> Problem | None:
    if not eligible_sectors or sector in eligible_sectors:
        return None
    return Problem(
        "organisation",
        f"{organisation} is in the {sector} sector; this call is open to {', '.join(eligible_sectors)} only",
    )


def window_problem(opens_at: datetime, closes_at: datetime | None, is_active: bool, now: datetime) -> Problem | None:
    if not is_active:
        return Problem("call_id", "this call is closed; choose an open call")
    if now < opens_at:
        return Problem("call_id", f"this call opens on {opens_at:%Y-%m-%d %H:%M} UTC; submit then")
    if closes_at is not None and now >= closes_at:
        return Problem("call_id", f"this call closed on {closes_at:%Y-%m-%d %H:%M} UTC")
    return None


def organisation_problems(
    *, name: str, country: str, sector: str, eligible_countries: list[str] | None, eligible_sectors: list[str]
) -> list[Problem]:
    """Country and sector of the applicant's organisation against a call's rules."""
    found = [
        country_problem(country, eligible_countries, organisation=name),
        sector_problem(sector, eligible_sectors, organisation=name),
    ]
    return [p for p in found if p is not None]
