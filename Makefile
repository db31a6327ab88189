# mamabear developer tasks. `make install` then `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@echo "Creating $(VENV) and installing mamabear with its dependencies (CrewAI, Chroma, OpenTelemetry: a few minutes the first time)."
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --progress-bar on pip
	$(PY) -m pip install --progress-bar on -e ".[dev]"
	touch $(STAMP)

# One worker per core; a test file stays on one worker (its servers, such as PostgreSQL, start once).
test: $(STAMP)
	$(PY) -m pytest -q -n auto --dist loadfile

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) bench/startup.py
	$(PY) bench/crew_overhead.py
	$(PY) bench/checkpoint.py
	$(PY) bench/sandbox.py
	$(PY) bench/memory.py
	$(PY) bench/memory_run.py
	$(PY) bench/tracing.py
	$(PY) bench/kill_trials.py 40  # ~15 min: SIGKILLs at random moments, then resume

clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache
