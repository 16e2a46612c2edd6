"""The code base keeps the house style's static checks: ruff (E, F, I, B, UP), the layering contracts
(lint-imports, [tool.importlinter] in pyproject.toml; docs/architecture.md) and mypy on src/ ([tool.mypy]).

`make lint` runs the same three commands and `make test` runs `make lint` first. The tools come with the
test extra, so a missing one fails here rather than skipping: a check that skips itself checks nothing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).parents[2]
LINT = [["ruff", "check", "src", "tests", "bench"], ["lint-imports", "--no-cache"], ["mypy"]]


def tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    assert found is not None, f"{name} is not installed: the test extra has it (pip install -e '.[test]')"
    return found


def run(argv: list[str], cwd: Path = ROOT, src: Path = ROOT / "src") -> subprocess.CompletedProcess[str]:
    """Run a lint command on the sources under ``src`` (not those an editable install points at)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(src), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([tool(argv[0]), *argv[1:]], cwd=cwd, env=env, capture_output=True, text=True)


def test_ruff_finds_nothing():
    result = run(LINT[0])
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_layering_contracts_are_kept():
    result = run(LINT[1])
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_finds_nothing():
    result = run(LINT[2])
    assert result.returncode == 0, result.stdout + result.stderr


def test_make_lint_runs_these_commands_and_make_test_runs_make_lint():
    makefile = (ROOT / "Makefile").read_text()
    lint = re.search(r"^lint:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert lint is not None
    recipe = [line.strip().removeprefix("$(BIN)/").split() for line in lint.group(1).splitlines()]
    assert recipe == LINT
    test = re.search(r"^test:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert test is not None and "$(MAKE) --no-print-directory lint" in test.group(1).splitlines()[0]


def test_the_contracts_of_docs_architecture_are_declared():
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    assert {c["id"] for c in contracts} >= {
        "web-is-infrastructure",  # web/ imports no concept
        "no-pages-below",  # concepts (services, models, schemas, routers) and db import no page module
        "pages-independent",  # a concept's pages import no other concept's pages
        "db-below-services",  # db imports no service
        "services-without-http",  # service.py imports neither fastapi nor starlette
    }


def test_the_contracts_catch_each_kind_of_wrong_import(tmp_path):
    """On a copy of the sources with one wrong import of each kind, lint-imports names every one."""
    shutil.copytree(ROOT / "src" / "jaif", tmp_path / "src" / "jaif", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    jaif = tmp_path / "src" / "jaif"
    (jaif / "web" / "probe.py").write_text("from jaif.calls import service\n")
    (jaif / "training" / "pages.py").write_text('"""Pages."""\n')
    (jaif / "support" / "pages.py").write_text("from jaif.training import pages\n")
    (jaif / "db" / "probe.py").write_text("from jaif.catalogue import service\n")
    with (jaif / "notify" / "service.py").open("a") as f:
        f.write("\nfrom jaif.training import pages  # noqa: E402\nimport starlette  # noqa: E402\n")

    result = run(["lint-imports", "--no-cache"], cwd=tmp_path, src=tmp_path / "src")

    assert result.returncode != 0
    for chain in (
        "jaif.web.probe -> jaif.calls.service",  # web-is-infrastructure
        "jaif.notify.service -> jaif.training.pages",  # no-pages-below
        "jaif.support.pages -> jaif.training.pages",  # pages-independent
        "jaif.db.probe -> jaif.catalogue.service",  # db-below-services
        "jaif.notify.service -> starlette",  # services-without-http
    ):
        assert chain in result.stdout, result.stdout
