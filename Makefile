# The two commands a newcomer needs: `make demo` and `make test` (both set up a fresh machine).
.DEFAULT_GOAL := help
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: coverage help setup test unit e2e lint typecheck demo bench clean

help:
	@echo "make demo   - bring up the local stack, run the autoscaler on a replayed trace, live output"
	@echo "make test   - lint, type-check, unit and end-to-end tests (real control plane + Prometheus)"
	@echo "make bench  - benchmarks, tables in bench/results/"

setup:
	@scripts/setup.sh

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: setup
	$(VENV)/bin/mypy policies adapters autoscaler

unit: setup
	$(PY) -m pytest tests/unit -q $(PYTEST_ARGS)

e2e: setup
	$(PY) -m pytest tests/e2e -q $(PYTEST_ARGS)

# policies/ is the product's core: its unit tests alone must cover >= 95 % of its lines
coverage: setup
	$(PY) -m pytest tests/unit/test_policies.py tests/unit/test_policy_spec.py -q \
		--cov=policies --cov-report=term-missing:skip-covered --cov-fail-under=95

test: setup lint typecheck coverage
	$(PY) -m pytest tests -q --durations=15 $(PYTEST_ARGS)

demo: setup
	$(VENV)/bin/llm-autoscaler demo

bench: setup
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf results .pytest_cache .mypy_cache .ruff_cache
