# epiflow — every target bootstraps .venv from pyproject.toml the first time it needs it.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
EPIFLOW_REQUIRE_KAFKA ?= 1
PYTEST_ARGS ?=
# e.g. make demo DEMO_ARGS="--duration 30" (options of `epiflow demo --help`)
DEMO_ARGS ?=

export EPIFLOW_REQUIRE_KAFKA

.PHONY: venv demo test test-fast bench drills kafka-up kafka-down lint clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/epiflow demo $(DEMO_ARGS)

# Everything, including the real Kafka broker (started on demand from Kafka's own jars).
# pytest's exit code 5 ("no tests collected") is a failure like any other.
test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; fi; exit $$rc

# Unit tests only: no broker, no browser.
test-fast: $(STAMP)
	EPIFLOW_REQUIRE_KAFKA=0 $(PY) -m pytest -m "not kafka and not browser" $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) -m tools.bench

drills: $(STAMP)
	$(PY) -m tools.drills

kafka-up: $(STAMP)
	$(PY) -m tools.kafka_broker up

kafka-down: $(STAMP)
	$(PY) -m tools.kafka_broker down

lint: $(STAMP)
	$(VENV)/bin/ruff check pipeline streams geo tests tools

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
