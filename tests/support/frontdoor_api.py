"""The REST API of the front door in tests: create_app on the test's rolled-back session, with real
personal access tokens (identity's own authentication), driven by httpx through the ASGI transport."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.orm import Session

from jaif.access.models import User
from jaif.app import create_app
from jaif.config import InferenceSettings, Settings
from jaif.identity import pats
from jaif.web import deps


def bearer(session: Session, user: User) -> dict[str, str]:
    _row, secret = pats.create(session=session, user_id=user.id, name="tests")
    return {"authorization": f"Bearer {secret}"}


def error_of(response: httpx.Response, status: int) -> dict:
    """The error of an /api answer, in the OpenAI shape, after checking its status."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
    return body["error"]


@pytest.fixture
async def api(session: Session, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(data_dir=tmp_path / "var", inference=InferenceSettings(builtin_models=False))
    app = create_app(settings)

    def db():
        with session.begin_nested():  # one request: kept when it succeeds, rolled back when it fails
            yield session

    app.dependency_overrides[deps.db] = db
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://jaif.test") as client:
        yield client
