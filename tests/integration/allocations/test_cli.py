"""The operators' commands, run as operators run them: `jaif call …`, `jaif application list`,
`jaif allocation …`, and `jaif project create --token-quota` / `set-quota` going through allocations
(in-process: tests/support/services.py's Cli, a second a command less than a `jaif` process each)."""

from __future__ import annotations

import json

from tests.support.procs import last_line
from tests.support.services import Cli


def test_operator_commands(jaif_env):
    jaif = Cli(jaif_env)
    jaif("init")
    listed = jaif("call", "list", "--json")
    calls = {c["slug"]: c for c in json.loads(last_line(listed))}
    assert set(calls) == {"playground", "fast-lane", "large-scale"}
    assert calls["playground"]["review_mode"] == "automatic"
    assert "playground" in jaif("call", "list").stdout

    # The seeded calls offer the site's partition (`local` with the local executor), not JUPITER's booster.
    assert calls["playground"]["offered_gpu_hours"] == {"local": 250_000.0}
    elsewhere = jaif("call", "create", "elsewhere", "--name", "Elsewhere", "--partition", "booster=20000",
                     check=False)
    assert elsewhere.returncode == 1 and "this site has no partition 'booster'; it has local" in elsewhere.stderr
    jaif("call", "create", "sme-ai", "--name", "SME AI", "--kind", "custom", "--review-mode", "technical",
         "--partition", "local=20000", "--max-gpu-hours", "2000", "--duration", "1", "--duration", "3",
         "--sector", "sme", "--sector", "startup", "--target-days", "5")
    jaif("call", "close", "fast-lane")
    slugs = {c["slug"] for c in json.loads(last_line(jaif("call", "list", "--json")))}
    assert slugs == {"playground", "large-scale", "sme-ai"}
    bad = jaif("call", "create", "bad", "--name", "Bad", "--partition", "booster", check=False)
    assert bad.returncode == 1 and "NAME=GPU_HOURS" in bad.stderr

    jaif("org", "create", "Uni A", "--sector", "academia", "--country", "DE")
    jaif("project", "create", "lab", "--org", "Uni A", "--token-quota", "5000")
    refused = jaif("allocation", "create", "--project", "lab", "--partition", "booster", "--gpu-hours", "100",
                   "--days", "30", check=False)
    assert refused.returncode == 1 and "this site has no partition 'booster'" in refused.stderr
    gpu_id = last_line(jaif("allocation", "create", "--project", "lab", "--partition", "local",
                            "--gpu-hours", "100", "--days", "30"))
    tokens_id = last_line(jaif("allocation", "create", "--project", "lab", "--tokens", "1000", "--days", "7"))
    assert len(gpu_id) == 32 and len(tokens_id) == 32
    rows = json.loads(last_line(jaif("allocation", "list", "--project", "lab", "--json")))
    by_id = {r["id"]: r for r in rows}
    assert by_id[gpu_id]["resource"] == "gpu_hours" and by_id[gpu_id]["partition"] == "local"
    assert by_id[tokens_id]["amount"] == 1000 and len(rows) == 3
    usage = json.loads(last_line(jaif("usage", "--project", "lab", "--json")))
    assert usage["token_quota"] == 6000

    assert "revoked" in jaif("allocation", "revoke", tokens_id).stdout
    usage = json.loads(last_line(jaif("usage", "--project", "lab", "--json")))
    assert usage["token_quota"] == 5000
    again = jaif("allocation", "revoke", tokens_id, check=False)
    assert again.returncode == 1 and "revoked already" in again.stderr
    jaif("project", "set-quota", "lab", "8000")
    usage = json.loads(last_line(jaif("usage", "--project", "lab", "--json")))
    assert usage["token_quota"] == 8000

    both = jaif("allocation", "create", "--project", "lab", "--tokens", "5", "--gpu-hours", "5",
                "--partition", "p", "--days", "1", check=False)
    assert both.returncode == 1 and "one of them" in both.stderr
    missing = jaif("allocation", "create", "--project", "nope", "--tokens", "5", "--days", "1", check=False)
    assert missing.returncode == 1 and "no project" in missing.stderr
    assert "0 expired" in jaif("allocation", "sweep").stdout

    assert json.loads(last_line(jaif("application", "list", "--json"))) == []
    assert json.loads(last_line(jaif("application", "list", "--call", "playground", "--state", "submitted",
                                     "--json"))) == []
    wrong = jaif("application", "list", "--state", "nonsense", check=False)
    assert wrong.returncode == 1 and "state must be one of" in wrong.stderr
