"""A browser stand-in for portal tests: an httpx client on the app (ASGI transport) that keeps the
session cookie, reads the CSRF token from the page that holds a form and sends it with the form, as a
browser does. Also: the links in the e-mails jaif sent, read from its outbox folder (the mail itself; the
notifications table keeps no live one-time link).
"""

from __future__ import annotations

import re
from email import policy
from email.parser import BytesParser
from pathlib import Path
from urllib.parse import urlsplit

import httpx

BASE = "http://portal.test"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_LINK = re.compile(r"https?://\S+")


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


class Browser:
    def __init__(self, app, base_url: str = BASE) -> None:
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)

    async def get(self, path: str, **kwargs) -> httpx.Response:
        return await self.client.get(path, **kwargs)

    async def submit(self, path: str, data: dict[str, str], *, page: str | None = None) -> httpx.Response:
        """Open ``page`` (default: ``path``), then post its form to ``path`` with ``data`` and the CSRF token."""
        form = await self.client.get(page or path)
        assert form.status_code == 200, (page or path, form.status_code, form.text[:500])
        return await self.client.post(path, data={**data, "csrf_token": csrf_of(form.text)})

    async def sign_in(self, email: str, password: str) -> httpx.Response:
        response = await self.submit("/login", {"email": email, "password": password})
        assert response.status_code == 303, response.text[:500]
        return response

    async def aclose(self) -> None:
        await self.client.aclose()


def mail_links(outbox: Path, to: str, path: str) -> list[str]:
    """The paths (with query) of the links to ``path`` in the e-mails sent to ``to``, newest first."""
    found = []
    for file in sorted(outbox.glob("*.eml"), reverse=True) if outbox.is_dir() else []:
        message = BytesParser(policy=policy.default).parsebytes(file.read_bytes())
        if message["To"] != to:
            continue
        for url in _LINK.findall(message.get_content()):
            parts = urlsplit(url)
            if parts.path.startswith(path):
                found.append(parts.path + (f"?{parts.query}" if parts.query else ""))
    return found
