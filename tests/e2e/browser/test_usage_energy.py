"""The usage page with energy and CO2 in a real browser (headless Chromium) against `jaif serve`: on a
desktop (1280×900) and on a phone (390×844) the page is no wider than the screen, the four charts (tokens,
GPU-hours, kWh, kg CO2) fit it, and their labels are drawn large enough to read (at least 9 px high) on
the phone. It leaves screenshots of both in its pytest tmp dir.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from tests.e2e.browser.conftest import sign_in
from tests.support.databases import one_database
from tests.support.procs import jaif

pytestmark = [pytest.mark.browser, pytest.mark.slow, one_database()]

# The height on screen of the smallest label of the page's charts, in CSS pixels.
SMALLEST_LABEL = """() => Math.min(...[...document.querySelectorAll('svg.chart text')]
    .map(t => t.getBoundingClientRect().height).filter(h => h > 0))"""
WIDEST_CHART = """() => Math.max(...[...document.querySelectorAll('svg.chart')]
    .map(s => s.getBoundingClientRect().right))"""


def _records(site, project_name: str) -> None:
    import jaif.db.models  # noqa: F401 (every model, so that the foreign keys resolve)
    from jaif.access.models import Project
    from jaif.compute.models import JobRecord
    from jaif.metering.models import UsageRecord

    now = datetime.now(UTC).replace(microsecond=0)
    with site.sessions() as session, session.begin():
        project_id = session.scalar(select(Project.id).where(Project.name == project_name))
        for day in range(10):
            when = now - timedelta(days=day)
            session.add(UsageRecord(request_id=uuid.uuid4().hex, project_id=project_id, endpoint="chat", model="m",
                                    prompt_tokens=600 * day, completion_tokens=400, total_tokens=600 * day + 400,
                                    created_at=when))
            session.add(JobRecord(cluster="browser", job_id=uuid.uuid4().hex[:12], project_id=project_id, account="a",
                                  user="u", name="train", partition="local", state="completed", ended_at=when,
                                  elapsed_s=3600 * (day + 1), nodes=1, gpus=4, gpu_hours=4.0 * (day + 1),
                                  energy_kwh=2.8 * (day + 1) + 0.0175, energy_source="model",
                                  co2_kg=(2.8 * (day + 1) + 0.0175) * 0.38))


def test_the_usage_page_with_energy_fits_a_desktop_and_a_phone(site, chromium, tmp_path):
    suffix = uuid.uuid4().hex[:6]
    email, project = f"eve-{suffix}@example.org", f"green-{suffix}"
    password = site.user(email)
    jaif(site.env, "org", "create", f"Green {suffix}", "--sector", "academia", "--country", "DE")
    jaif(site.env, "project", "create", project, "--org", f"Green {suffix}", "--member", email)
    _records(site, project)

    for name, width, height, smallest in (("desktop", 1280, 900, 9.0), ("phone", 390, 844, 9.0)):
        context = chromium.new_context(viewport={"width": width, "height": height})
        context.set_default_timeout(20_000)
        try:
            page = context.new_page()
            sign_in(page, site, email, password)
            page.goto(site.base + "/usage?days=30")
            assert page.locator("svg.chart").count() == 4, name
            assert "kWh" in page.locator("p.totals").inner_text() and "kg CO2" in page.locator("p.totals").inner_text()
            assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), name
            assert page.evaluate(WIDEST_CHART) <= width, name
            assert page.evaluate(SMALLEST_LABEL) >= smallest, name
            page.get_by_text("The figures as a table").click()
            assert "Energy (kWh)" in page.locator("table").inner_text()
            assert "0.0174999" not in page.content()
            page.screenshot(path=str(tmp_path / f"usage-{name}.png"), full_page=True)
        finally:
            context.close()
