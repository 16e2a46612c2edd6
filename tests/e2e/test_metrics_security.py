"""Replica URLs with credentials (``http://svc:secret@host``) never show them, and /metrics can ask
Prometheus for a bearer token (JAIF_INFERENCE__METRICS_TOKEN)."""

from __future__ import annotations

import json
import subprocess
from types import SimpleNamespace

import httpx
import pytest

from tests.support.api import bearer, openai_error
from tests.support.databases import one_database
from tests.support.gateway import FAST_ROUTING, add_model, create_key, metric, records_after, scrape, wait_served
from tests.support.procs import JAIF, free_port, jaif, stop, upstream, wait_for, wait_http

pytestmark = one_database()
PASSWORD = "topsecret"
TOKEN = "scrape-token-0123456789"
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def gateway(module_env, tmp_path_factory):
    env = {**module_env, **FAST_ROUTING, "JAIF_INFERENCE__METRICS_TOKEN": TOKEN}
    db = env["JAIF_DATABASE_URL"]
    key = create_key(db, project="secrets")
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with upstream(env) as (url, _), log.open("w") as out:
        host = url.removeprefix("http://")  # 127.0.0.1:PORT/v1
        good = f"http://svc:{PASSWORD}@{host}"
        down = f"http://svc:{PASSWORD}@127.0.0.1:{free_port()}/v1"  # refuses connections
        proc = subprocess.Popen([JAIF, "serve", "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_http(base + "/healthz", timeout=120, proc=proc)
            add_model(db, "m-secret", [good])
            add_model(db, "m-secret-down", [down])
            wait_served(base, "m-secret", replicas=1)
            wait_served(base, "m-secret-down", replicas=1)
            yield SimpleNamespace(base=base, key=key, db=db, env=env, good=good, down=down, host=host, log=log)
        finally:
            stop(proc)


def test_metrics_want_the_token_when_one_is_set(gateway):
    assert httpx.get(gateway.base + "/metrics", timeout=5).status_code == 401
    wrong = httpx.get(gateway.base + "/metrics", headers=bearer("not-the-token"), timeout=5)
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"].startswith("Bearer")
    assert httpx.get(gateway.base + "/metrics", headers={"authorization": TOKEN}, timeout=5).status_code == 401
    right = httpx.get(gateway.base + "/metrics", headers=bearer(TOKEN), timeout=5)
    assert right.status_code == 200 and "jaif_requests_total" in right.text


def test_jaif_serve_does_not_name_its_server_software(gateway):
    """No ``server: uvicorn`` header (uvicorn's default) on an answer of the hot path, the API or a page (no
    completion: the next test counts this module's usage records)."""
    http = httpx.Client(base_url=gateway.base, headers=bearer(gateway.key), timeout=10)
    answers = [
        http.post("/v1/chat/completions", json={"model": "m-secret", "messages": "not a list"}),
        http.get("/v1/models"),
        httpx.get(gateway.base + "/login", timeout=10),
        httpx.get(gateway.base + "/healthz", timeout=10),
    ]
    assert [a.status_code for a in answers] == [400, 200, 200, 200], [a.text for a in answers]
    assert [a.headers.get("server") for a in answers] == [None] * len(answers)


def test_replica_credentials_never_show(gateway):
    http = httpx.Client(base_url=gateway.base, headers=bearer(gateway.key), timeout=10)
    ok = http.post("/v1/chat/completions", json={"model": "m-secret", "messages": HI, "max_tokens": 2})
    assert ok.status_code == 200, ok.text
    failed = http.post("/v1/chat/completions", json={"model": "m-secret-down", "messages": HI})
    assert failed.status_code in (502, 503), failed.text
    assert PASSWORD not in failed.text
    if failed.status_code == 503:
        openai_error(failed, 503)

    shown = f"http://***@{gateway.host}"
    health = wait_for(
        lambda: metric(scrape(gateway.base, token=TOKEN), "jaif_replica_healthy", model="m-secret", replica=shown),
        lambda value: value == 1,
    )
    assert health == 1
    text = httpx.get(gateway.base + "/metrics", headers=bearer(TOKEN), timeout=5).text
    assert PASSWORD not in text and "svc:" not in text
    assert f'replica="{gateway.down.replace(f"svc:{PASSWORD}", "***")}"' in text

    # The usage ledger records which replica served, without its credentials.
    [record] = records_after(gateway.db, model="m-secret", count=1)
    assert record.replica == shown

    # Operators' lists: `jaif model list`, as a table and as JSON.
    wide = {**gateway.env, "COLUMNS": "250"}
    table = jaif(wide, "model", "list").stdout
    assert PASSWORD not in table and "***@" in table
    rows = {r["name"]: r for r in json.loads(jaif(gateway.env, "model", "list", "--json").stdout)}
    assert rows["m-secret"]["replicas"] == [shown]


def test_server_log_shows_no_credentials(gateway):
    # The down replica fails its health checks, and each time it is taken out the log says so.
    text = wait_for(gateway.log.read_text, lambda t: "failed its health check" in t, timeout=30)
    assert "failed its health check" in text, text[-2000:]
    assert "***@127.0.0.1" in text, text[-2000:]
    assert PASSWORD not in text, text[-2000:]
