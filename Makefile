# kvmtop: `sudo make run` and `sudo make test` do all set-up on a fresh Debian/Ubuntu machine.
VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.kvmtop-setup

.PHONY: setup launcher run test check bench soak screenshots clean

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup.sh scripts/launcher.sh
	bash scripts/setup.sh
	touch $(STAMP)

# Point /usr/local/bin/kvmtop at this checkout, whichever it ran before.
launcher: setup
	bash scripts/launcher.sh here

run: setup
	$(VENV)/bin/kvmtop $(ARGS)

test: setup
	$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

# Lint and types (configured in pyproject.toml); both must be clean.
check: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# Benchmarks print figures against their targets; a missed target is reported, not fatal.
bench: setup
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || echo "($$b: a target was missed or it failed, see above)"; done

# The churn soak (issue 8): 50 real guests over at least 5 minutes; prints its figures.
soak: setup
	$(PY) bench/soak.py $(ARGS)

screenshots: setup
	$(PY) scripts/screenshots.py

clean:
	rm -rf $(VENV) build *.egg-info
