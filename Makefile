# `make quickstart`, `make test`, `make mutate` and `make docs` each create .venv when it is missing, install the package, then run.
PY      ?= python3
VENV    := .venv
VPY     := $(VENV)/bin/python
STAMP   := $(VENV)/.installed

.PHONY: quickstart test test-slow mutate docs venv clean

$(VPY):
	$(PY) -m venv $(VENV)

# torch is installed only when it is not importable already: torch==2.13.0 is the CPU wheel on this machine.
$(STAMP): $(VPY) pyproject.toml
	$(VPY) -m pip install -q --upgrade pip >/dev/null 2>&1 || true
	$(VPY) -c "import torch" 2>/dev/null || $(VPY) -m pip install -q torch==2.13.0
	$(VPY) -m pip install -q -e ".[dev,docs]"
	touch $(STAMP)

venv: $(STAMP)

quickstart: $(STAMP)
	$(VPY) -m posetokens.quickstart

# two pytest workers (pytest-xdist) of one thread each on the CI's 2 cores (tests/conftest.py): 6.5 min against 11.8 min
# in one process of 2 threads; the 15 slowest tests go to the log
TEST_JOBS ?= 2
test: $(STAMP)
	$(VPY) -m pytest -q -n $(TEST_JOBS) --durations=15

test-slow: $(STAMP)
	$(VPY) -m pytest -q -m slow

# one planted bug per claim, each in a throw-away copy; the fast tests that guard the claim must fail (docs/testing.md)
mutate: $(STAMP)
	$(VPY) scripts/mutate.py $(MUTATE_FLAGS)

# the documentation site (mkdocs.yml) into build/site; strict: a broken link, a page left out of the navigation
# or an API name that no longer exists fails the build (docs/contributing.md)
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VPY) -m mkdocs build --strict

clean:
	rm -rf $(VENV) build dist src/*.egg-info
