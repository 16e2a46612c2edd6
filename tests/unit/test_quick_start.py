"""The README's quick start holds for a newcomer: every module its Python snippet imports is installed
by `make run` (the extras the Makefile's install recipe names), not only by the test extra.
tests/e2e/test_quick_start.py runs the snippet itself against a real `jaif serve`."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

from tests.support.quick_start import quick_start_snippet

ROOT = Path(__file__).parents[2]
# The distribution that provides an import name, where the two differ.
DISTRIBUTIONS = {"openai": "openai"}


def run_environment() -> set[str]:
    """The distributions `make run` installs: jaif's dependencies and the extras of its install recipe."""
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("$(STAMP): $(BIN)/python pyproject.toml", 1)[1].split("\n\n", 1)[0]
    extras = re.search(r"-e '\.\[([a-z,]+)\]'", recipe)
    assert extras is not None, recipe
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in extras.group(1).split(","):
        requirements += project["optional-dependencies"][extra]
    return {re.split(r"[<>=\[; ]", r, maxsplit=1)[0].lower() for r in requirements}


def test_make_run_installs_what_the_readme_snippet_imports():
    imported = set()
    for node in ast.walk(ast.parse(quick_start_snippet())):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
    assert imported == {"openai"}
    missing = {DISTRIBUTIONS.get(name, name) for name in imported} - run_environment()
    assert not missing, f"`make run` does not install {missing}, which the README's snippet imports"


def test_the_readme_says_how_to_get_the_client():
    readme = (ROOT / "README.md").read_text()
    assert "pip install openai" in readme and ".venv/bin/python" in readme
