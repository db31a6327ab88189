# mamabear developer tasks. `make install` then `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install jail test lint bench clean

install: $(STAMP) jail

# The local sandbox's jail (bubblewrap, slirp4netns for its network) and its browser (Chromium) from the system's package
# manager, as root or with sudo that asks no password; otherwise it says what to run. Without a jail the local sandbox
# refuses to run commands (isolation: required) or runs them unjailed (isolation: best-effort in config/sandbox.yaml).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo -n)
jail:
	@if command -v bwrap >/dev/null && command -v slirp4netns >/dev/null && command -v chromium >/dev/null; then \
		echo "The sandbox jail is installed: $$(bwrap --version), $$(slirp4netns --version | head -1), $$(chromium --version 2>/dev/null)."; \
	elif command -v apt-get >/dev/null; then \
		echo "Installing the sandbox jail and browser: bubblewrap, slirp4netns and chromium (apt-get)."; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends bubblewrap slirp4netns chromium \
		|| ($(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends bubblewrap slirp4netns chromium) \
		|| echo "Could not install them: run 'sudo apt-get install bubblewrap slirp4netns chromium'."; \
	elif command -v dnf >/dev/null; then \
		$(SUDO) dnf install -y bubblewrap slirp4netns chromium || echo "Could not install them: run 'sudo dnf install bubblewrap slirp4netns chromium'."; \
	else \
		echo "Install bubblewrap, slirp4netns and chromium with your package manager for the sandbox (Linux only)."; \
	fi

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
	$(PY) -m pytest -q -p no:xdist tests/test_seams.py  # the run path's seams: typed, no Any

bench: $(STAMP)
	$(PY) bench/startup.py
	$(PY) bench/crew_overhead.py
	$(PY) bench/checkpoint.py
	$(PY) bench/sandbox.py
	$(PY) bench/memory.py
	$(PY) bench/memory_run.py
	$(PY) bench/tracing.py
	$(PY) bench/pool.py
	$(PY) bench/screen.py
	$(PY) bench/kill_trials.py 40  # ~15 min: SIGKILLs at random moments, then resume

clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache
