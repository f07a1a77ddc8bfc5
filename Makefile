# The two commands of the README: `make repro` (the pipeline) and `make test` (the test suite).
# Both set up .venv first (pinned requirements, skipped when already up to date).
SHELL := /bin/bash
export PATH := $(CURDIR)/.venv/bin:$(PATH)
export DVC_NO_ANALYTICS := 1
# Test processes (pytest-xdist): the smoke run's tests on one, the sweep's on one, the rest on
# whichever is free (tests/conftest.py, SHARED_RUNS); TEST_JOBS=0 runs them in this process.
TEST_JOBS ?= 2

.PHONY: setup repro test
setup:
	@bash scripts/setup.sh

repro: setup
	dvc repro

test: setup
	ruff check src tests
	python -m pytest -n $(TEST_JOBS)
