"""`jaif solution …` and `jaif support list` as operators run them."""

from __future__ import annotations

import json

from tests.support.procs import last_line
from tests.support.services import Cli


def test_create_link_publish_and_list(jaif_env):
    jaif = Cli(jaif_env)
    jaif("db", "upgrade")
    jaif("model", "add", "llama-med", "--upstream", "http://gpu1:8000/v1", "--alias", "med-chat")
    jaif(
        "solution",
        "create",
        "med-qa",
        "--name",
        "Medical QA",
        "--licence",
        "Apache-2.0",
        "--language",
        "English",
        "--language",
        "German",
        "--intended-use",
        "Decision support",
    )
    assert json.loads(last_line(jaif("solution", "list", "--json"))) == []  # a draft
    assert "llama-med" in jaif("solution", "link", "med-qa", "med-chat").stdout
    jaif("solution", "publish", "med-qa")
    [solution] = json.loads(last_line(jaif("solution", "list", "--json")))
    assert solution["languages"] == ["English", "German"] and solution["model"]["aliases"] == ["med-chat"]
    unknown = jaif("solution", "link", "med-qa", "no-such-model", check=False)
    assert unknown.returncode == 1 and "no-such-model" in unknown.stderr
    assert json.loads(last_line(jaif("support", "list", "--json"))) == []
