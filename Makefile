# Two commands do everything on a fresh clone: `make bench` and `make test`.
# Each installs what is missing first: a virtualenv in .venv with the CPU build of torch
# (pip install torch==2.13.0, before the project, so no multi-GB CUDA build is pulled).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
TORCH := torch==2.13.0

.PHONY: install test bench lint ci-report results clean lock

# Every dependency version is pinned in constraints.txt, so a fresh install gets the versions the
# committed records and tests were made with (torch is pinned by TORCH above, so it works for
# CPU and CUDA wheels alike). `make lock` upgrades within pyproject.toml and regenerates it.
CONSTRAINTS := constraints.txt

install: $(STAMP)

# The example plugin is installed too: tests/test_plugin_example.py uses it through its entry point.
$(STAMP): pyproject.toml $(CONSTRAINTS) examples/plugin/pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -c $(CONSTRAINTS) -e '.[dev]'
	$(PY) -m pip install --quiet -c $(CONSTRAINTS) -e examples/plugin
	@touch $(STAMP)

test: install
	$(PY) -m pytest -q

bench: install
	$(VENV)/bin/genrec-bench bench

# The tiny CI suite rendered as the leaderboard files a CI job publishes.
ci-report: install
	$(VENV)/bin/genrec-bench bench benchmarks/suites/ci-tiny.toml --results reports/ci-results --format markdown
	$(VENV)/bin/genrec-bench report --results reports/ci-results --format markdown --out reports/leaderboard.md
	$(VENV)/bin/genrec-bench report --results reports/ci-results --format html --out reports/leaderboard.html

# docs/results.md, the README's Beauty summary and docs/reproduce.md's commands, rebuilt from the
# committed records in benchmarks/results/ (run it after adding a record; tests fail when stale).
results: install
	$(PY) -m genrec_bench.results_page

lint: install
	$(VENV)/bin/ruff check genrec_bench cli baselines tests benchmarks examples

lock: install
	$(PY) -m pip install --quiet --upgrade -e '.[dev]'
	$(PY) -m pip freeze --exclude-editable | grep -vE '^(-e |torch==|nvidia-|triton==)' > $(CONSTRAINTS)
	@echo "wrote $(CONSTRAINTS): $$(wc -l < $(CONSTRAINTS)) pins"

clean:
	rm -rf $(VENV) results reports runs build *.egg-info
