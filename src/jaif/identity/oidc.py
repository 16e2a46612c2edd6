"""The OpenID Connect adapter: Authlib's Starlette client for each configured provider.

It runs the authorization-code flow with PKCE and a nonce (state and verifier live in the signed
session cookie), checks the ID token's signature, issuer, audience and nonce, and adds the claims of
the userinfo endpoint, where providers that follow the standard put the e-mail address. Foreign errors
are translated here: what the provider or the user did wrong is InvalidRequest, an unreachable or
misbehaving provider is UpstreamError. Built once in create_app from Settings; no network at start.
"""

from __future__ import annotations

import logging

import httpx
from authlib.integrations.base_client import OAuthError
from authlib.integrations.starlette_client import OAuth
from joserfc.errors import JoseError
from starlette.requests import Request
from starlette.responses import Response

from jaif.config import OidcProviderSettings
from jaif.errors import InvalidRequest, NotFound, UpstreamError

log = logging.getLogger(__name__)


class SsoProviders:
    """The configured providers, by name (the name appears in /login/sso/NAME)."""

    def __init__(self, providers: list[OidcProviderSettings], *, timeout_s: float = 10.0) -> None:
        self._settings = {p.name: p for p in providers}
        self._oauth = OAuth()
        for p in providers:
            self._oauth.register(
                name=p.name,
                client_id=p.client_id,
                client_secret=p.client_secret.get_secret_value(),
                server_metadata_url=p.metadata_url,
                client_kwargs={"scope": p.scopes, "code_challenge_method": "S256", "timeout": timeout_s},
            )

    def __iter__(self):
        return iter(self._settings.values())

    def __bool__(self) -> bool:
        return bool(self._settings)

    def get(self, name: str) -> OidcProviderSettings:
        provider = self._settings.get(name)
        if provider is None:
            raise NotFound(f"There is no single sign-on provider called {name!r}.")
        return provider

    async def redirect(self, request: Request, name: str, *, redirect_uri: str) -> Response:
        """The redirect to the provider's authorization endpoint."""
        provider = self.get(name)
        client = self._oauth.create_client(name)
        try:
            return await client.authorize_redirect(request, redirect_uri)
        except (httpx.HTTPError, ValueError, KeyError, RuntimeError) as exc:
            log.warning("single sign-on provider %s: %s", name, exc)
            raise UpstreamError(f"{provider.display_name} cannot be reached just now; try again later.") from exc

    async def claims(self, request: Request, name: str) -> dict:
        """Finish the flow on the callback request; returns the verified claims (sub, email, ...)."""
        provider = self.get(name)
        client = self._oauth.create_client(name)
        try:
            token = await client.authorize_access_token(request)
            metadata = await client.load_server_metadata()
            if metadata.get("issuer", "").rstrip("/") != provider.issuer.rstrip("/"):
                raise UpstreamError(
                    f"{provider.display_name} names itself {metadata.get('issuer')!r}, not the configured issuer."
                )
            claims = dict(token.get("userinfo") or {})
            if metadata.get("userinfo_endpoint") and ("email" not in claims or "email_verified" not in claims):
                info = dict(await client.userinfo(token=token))
                if claims and info.get("sub") != claims.get("sub"):
                    raise UpstreamError(f"{provider.display_name} answered for another user.")
                claims = {**claims, **info}
        except OAuthError as exc:
            reason = exc.description or exc.error or "the sign-in was not completed"
            raise InvalidRequest(f"Signing in with {provider.display_name} did not work: {reason}.") from exc
        except JoseError as exc:
            raise InvalidRequest(f"{provider.display_name} sent an ID token that does not check out: {exc}.") from exc
        except httpx.HTTPError as exc:
            log.warning("single sign-on provider %s: %s", name, exc)
            raise UpstreamError(f"{provider.display_name} cannot be reached just now; try again later.") from exc
        if not claims.get("sub"):
            raise UpstreamError(f"{provider.display_name} sent no subject identifier.")
        return claims
