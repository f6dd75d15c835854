# Two commands do everything: `make run` and `make test`. Both build .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Extra pytest arguments, e.g. `make test PYTEST_ARGS="-k policy"`.
PYTEST_ARGS ?=

.PHONY: run test unit nbval notebooks bench sandbox-stop clean

# The venv, with the package installed editable and byte-compiled (an editable
# install compiles none of it; where PYTHONDONTWRITEBYTECODE is set, every
# command would compile it again).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m compileall -q runbook
	touch $@

## run: link the embedded sandbox account end to end (sections in order), keep the run folder
run: $(STAMP)
	$(BIN)/runbook run

## test: unit tests, papermill end-to-end runs, nbval over notebooks/, final secret scan
test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## notebooks: rebuild the section notebooks and their reference outputs (a fresh sandbox)
notebooks: $(STAMP)
	$(BIN)/python scripts/build_notebooks.py
	$(BIN)/python scripts/refresh_notebooks.py

sandbox-stop: $(STAMP)
	$(BIN)/runbook sandbox stop

clean:
	-$(BIN)/runbook sandbox stop
	rm -rf .runbook runs test-artifacts .pytest_cache

## bench: the link three ways (AWS CLI, bare boto3, runbook run) on one sandbox; prints medians and ratios
bench: $(STAMP)
	$(BIN)/python bench/bench.py
