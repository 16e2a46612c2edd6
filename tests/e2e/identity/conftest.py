"""A real OpenID Connect provider for the single sign-on tests: panva/oidc-provider from the npm
registry, run by Node on a free loopback port (tests/e2e/identity/oidc_provider/).

`make test` installs it (npm ci, once per package-lock change); run alone, the fixture installs it.
Without Node.js the tests skip and say so.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.procs import base_env, free_port, started

PROVIDER_DIR = Path(__file__).parent / "oidc_provider"


@pytest.fixture(scope="session")
def oidc_provider_script() -> Path:
    """provider.js with its node_modules in place (npm ci when missing); skips without Node.js."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None:
        pytest.skip("Node.js is not installed: the single sign-on tests run oidc-provider with it (Node 20+)")
    if not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
        if npm is None:
            pytest.skip("npm is not installed, and oidc-provider is not in tests/e2e/identity/oidc_provider/")
        result = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=PROVIDER_DIR, capture_output=True, text=True, timeout=300,
        )
        if result.returncode != 0:
            pytest.skip(f"npm ci of the test OpenID Connect provider failed: {result.stderr[-500:]}")
    return PROVIDER_DIR / "provider.js"


@dataclass(frozen=True)
class OidcProvider:
    issuer: str
    client_id: str
    client_secret: str


@contextmanager
def oidc_provider(script: Path, *, redirect_uri: str) -> Iterator[OidcProvider]:
    """oidc-provider on a free port, with one confidential client whose redirect URI is ``redirect_uri``."""
    port = free_port()
    provider = OidcProvider(
        issuer=f"http://127.0.0.1:{port}", client_id="jaif-test", client_secret=f"s3cret-{port}"
    )
    env = base_env(PORT=str(port), CLIENT_ID=provider.client_id, CLIENT_SECRET=provider.client_secret,
                   REDIRECT_URI=redirect_uri, NODE_NO_WARNINGS="1")
    argv = [shutil.which("node") or "node", str(script)]
    with started(argv, env, f"{provider.issuer}/.well-known/openid-configuration", timeout=30):
        yield provider
