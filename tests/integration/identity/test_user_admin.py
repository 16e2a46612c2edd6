"""Operators manage accounts (issue 14, item 3): list and search, change a role (an existing account
becomes a reviewer), deactivate and reactivate; through the API, the console and the CLI. Others are
refused, and an operator cannot demote or deactivate themselves."""

from __future__ import annotations

import json

from sqlalchemy import select

from jaif.access.models import User
from jaif.identity.models import UserSession
from tests.support.frontdoor_api import error_of
from tests.support.procs import last_line
from tests.support.services import Cli, portal  # noqa: F401


async def test_operators_find_accounts_and_change_their_role_and_state(api, world, session):
    op, rita, max_ = world.operator("olga"), world.user("rita"), world.user("max")
    session.commit()
    as_op, as_rita, as_max = api.as_(op), api.as_(rita), api.as_(max_)
    assert (await as_max.get("/api/v1/me")).status_code == 200

    found = await as_op.get("/api/v1/users", params={"search": "RIT"})
    assert found.status_code == 200 and [u["email"] for u in found.json()] == [rita.email]
    assert found.headers["x-total-count"] == "1"
    by_name = await as_op.get("/api/v1/users", params={"search": "Max"})
    assert [u["email"] for u in by_name.json()] == [max_.email]
    assert (await as_op.get("/api/v1/users", params={"search": "%"})).json() == []  # no wildcard
    assert error_of(await as_op.get("/api/v1/users", params={"search": "a\x00b"}), 400)["param"] == "search"
    assert error_of(await as_rita.get("/api/v1/users"), 403)

    made = await as_op.patch(f"/api/v1/users/{rita.user_id}", json={"role": "reviewer"})
    assert made.status_code == 200 and made.json()["role"] == "reviewer"
    reviewers = await as_op.get("/api/v1/users", params={"role": "reviewer"})
    assert [u["email"] for u in reviewers.json()] == [rita.email]
    assert error_of(await as_op.patch(f"/api/v1/users/{rita.user_id}", json={"role": "admin"}), 400)
    assert error_of(await as_op.patch(f"/api/v1/users/{rita.user_id}", json={"colour": "red"}), 400)
    assert error_of(await as_rita.patch(f"/api/v1/users/{max_.user_id}", json={"role": "operator"}), 403)
    assert error_of(await as_op.patch("/api/v1/users/nope", json={"is_active": False}), 404)

    off = await as_op.patch(f"/api/v1/users/{max_.user_id}", json={"is_active": False})
    assert off.status_code == 200 and off.json()["is_active"] is False
    session.expire_all()
    assert session.get(User, max_.user_id).is_active is False
    assert error_of(await as_max.get("/api/v1/me"), 401)  # their tokens are refused at once
    refused = error_of(await as_op.patch(f"/api/v1/users/{op.user_id}", json={"role": "user"}), 403)
    assert "another operator" in refused["message"]
    assert error_of(await as_op.patch(f"/api/v1/users/{op.user_id}", json={"is_active": False}), 403)


async def test_the_console_lists_accounts_and_makes_a_reviewer(portal, world, session):  # noqa: F811
    op, rita = world.operator("olga"), world.user("rita")
    session.commit()
    browser = await portal.as_(op)
    await portal.as_(rita)  # signed in: her session ends when her role changes
    page = await browser.get("/operator/users?search=rita")
    assert page.status_code == 200 and f"<td>{rita.email}</td>" in page.text and f"<td>{op.email}</td>" not in page.text
    assert f'id="role-{rita.user_id}"' in page.text and 'href="/operator/users" aria-current="page"' in page.text
    changed = await browser.submit(f"/operator/users/{rita.user_id}/role", {"role": "reviewer", "back": "search=rita"},
                                   page="/operator/users?search=rita")
    assert changed.status_code == 303 and changed.headers["location"] == "/operator/users?search=rita"
    session.expire_all()
    assert session.get(User, rita.user_id).role == "reviewer"
    shown = (await browser.get("/operator/users?search=rita")).text
    assert "is now reviewer, active; their sessions have ended." in shown
    off = await browser.submit(f"/operator/users/{rita.user_id}/active", {"active": "0"}, page="/operator/users")
    assert off.status_code == 303
    session.expire_all()
    assert session.get(User, rita.user_id).is_active is False
    ended = session.scalars(select(UserSession.ended_at).where(UserSession.user_id == rita.user_id)).all()
    assert ended and None not in ended
    # A user who is not an operator never reaches the page.
    assert (await (await portal.as_(world.user("eve"))).get("/operator/users")).status_code in (403, 404)


def test_the_cli_lists_accounts_and_sets_roles(jaif_env):
    jaif = Cli(jaif_env)
    jaif("db", "upgrade")
    last_line(jaif("user", "create", "rev@example.org"))
    jaif("user", "set-role", "rev@example.org", "--role", "reviewer")
    rows = json.loads(jaif("user", "list", "--role", "reviewer", "--json").stdout)
    assert [(r["email"], r["role"], r["is_active"]) for r in rows] == [("rev@example.org", "reviewer", True)]
    jaif("user", "deactivate", "rev@example.org")
    assert json.loads(jaif("user", "list", "--search", "rev@", "--json").stdout)[0]["is_active"] is False
    wrong = jaif("user", "set-role", "rev@example.org", "--role", "boss", check=False)
    assert wrong.returncode == 1 and "role must be one of user, reviewer, operator" in wrong.stderr
    assert "rev@example.org" in jaif("user", "list").stdout
