"""Every page of the portal, walked by following its links, has each id once, and each label, description
and in-page link points at an element that is there (issue 14, form polish: ``f-sector_academia`` was
on the new-call form twice, on the sectors' fieldset and on the first checkbox, so clicking *Academia*
did nothing).

The walk starts at the pages a visitor, an applicant and an operator land on, and follows every link
within the portal (never /api, /v1, downloads or sign-out), so that pages added later are checked too.
Forms shown with their errors are checked the same way.
"""

from __future__ import annotations

from collections import Counter
from html.parser import HTMLParser
from urllib.parse import urldefrag, urlsplit

from jaif.allocations import service as allocations
from tests.integration.pages.test_apply import start, step
from tests.integration.pages.test_operator import NEW_CALL

# /chat needs the gateway (the models' status), which this app without its lifespan lacks: the chat's own
# tests (tests/integration/chat, tests/e2e/browser/test_chat.py) check its pages.
SKIP = ("/api/", "/v1/", "/static/", "/logout", "/openapi.json", "/metrics", "/healthz", "/readyz", "/chat")
MOST = 150  # pages per walk: enough for every kind of page, bounded however many links a page has


class Page(HTMLParser):
    """The ids of a page and what refers to them: label for=, aria-describedby/-labelledby, #links."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: list[str] = []
        self.refs: list[tuple[str, str]] = []  # (what refers, the id)
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        given = {k: v or "" for k, v in attrs}
        if "id" in given:
            self.ids.append(given["id"])
        if tag == "label" and given.get("for"):
            self.refs.append((f"<label for={given['for']}>", given["for"]))
        for name in ("aria-describedby", "aria-labelledby", "aria-controls"):
            for ref in given.get(name, "").split():
                self.refs.append((f"<{tag} {name}>", ref))
        if tag == "a" and given.get("href"):
            self.links.append(given["href"])

    def problems(self, path: str) -> list[str]:
        twice = sorted(i for i, n in Counter(self.ids).items() if n > 1)
        found = [f"{path}: id {i!r} more than once" for i in twice]
        known = set(self.ids)
        found += [f"{path}: {what} points at no element" for what, ref in self.refs if ref not in known]
        for link in self.links:
            target, fragment = urldefrag(link)
            if fragment and target in ("", path) and fragment not in known and fragment not in ("main", "top"):
                found.append(f"{path}: link to #{fragment} points at no element")
        return found


def _followed(link: str, seen: set[str]) -> str | None:
    parts = urlsplit(link)
    if parts.scheme or parts.netloc or not parts.path.startswith("/"):
        return None
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    if path in seen or parts.path.endswith((".csv", ".json", ".txt", ".log")) or parts.path.startswith(SKIP):
        return None
    return path


async def walk(browser, starts: list[str]) -> tuple[int, list[str]]:
    """Follow links from ``starts``; returns how many pages were read and every problem found."""
    queue, seen, problems = list(starts), set(starts), []
    read = 0
    while queue and read < MOST:
        path = queue.pop(0)
        response = await browser.get(path)
        if response.status_code != 200 or not response.headers.get("content-type", "").startswith("text/html"):
            continue
        read += 1
        page = Page()
        page.feed(response.text)
        problems += page.problems(path)
        for link in page.links:
            found = _followed(link, seen)
            if found is not None:
                seen.add(found)
                queue.append(found)
    return read, problems


async def test_every_page_has_each_id_once_and_every_label_points_at_its_field(portal, world, seeded, session, api):
    operator, alice = world.operator(), world.user("alice")
    lab = world.project(alice, pi=operator)
    allocations.allocate(session=session, project_id=lab.id, resource="gpu_hours", amount=10.0,
                         partition="local", days=30)
    session.commit()

    read, problems = await walk(api.anonymous, ["/", "/login", "/signup", "/apply", "/catalogue",
                                                          "/training", "/forgot-password"])
    assert read >= 5, read

    applicant = await portal.as_(alice)
    app_id = await start(applicant)
    more, found = await walk(applicant, ["/", "/account", "/usage", "/jobs", "/jobs/new", "/notifications",
                                         f"/applications/{app_id}/edit/proposal"])
    read, problems = read + more, problems + found

    console = await portal.as_(operator)
    more, found = await walk(console, ["/", "/operator", "/operator/calls/new", f"/projects/{lab.id}/keys",
                                       "/operator/outbox", "/review"])
    read, problems = read + more, problems + found
    assert read >= 40, read  # the walk reached the pages, not only the starts
    assert not problems, "\n".join(problems)


async def test_a_form_with_errors_keeps_each_id_once(portal, world, seeded):
    """The forms where a group of fields carries the error (fieldsets): shown with their errors."""
    browser = await portal.as_(world.operator())
    problems = []
    bad_call = await browser.submit("/operator/calls/new", NEW_CALL | {"durations_months": "1, three"})
    assert bad_call.status_code == 400
    page = Page()
    page.feed(bad_call.text)
    problems += page.problems("/operator/calls/new")
    app_id = await start(browser)
    for name, data in (("resources", {"gpu_hours.booster": "9000"}), ("ai-act", {}), ("team", {})):
        refused = await step(browser, app_id, name, data)
        assert refused.status_code == 400, name
        page = Page()
        page.feed(refused.text)
        problems += page.problems(f"/applications/{app_id}/edit/{name}")
    assert not problems, "\n".join(problems)
