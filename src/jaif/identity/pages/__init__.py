"""Identity's portal pages: signing up, in and out, e-mail verification, password reset and single sign-on
(sign_in.py); the account page with personal access tokens, and accepting an invitation (account.py); a
project's team (team.py) and its API keys (keys.py); the operators' accounts page (users.py).
``router`` holds them all (mounted by jaif/routes.py).
"""

from __future__ import annotations

from fastapi import APIRouter

from jaif.identity.pages import account, keys, sign_in, team, users

router = APIRouter(include_in_schema=False)
for _module in (sign_in, account, team, keys, users):
    router.include_router(_module.router)
