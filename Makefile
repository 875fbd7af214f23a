# Two entry points for a fresh clone: `make demo` and `make test`.
# Both create or refresh the virtual environment in .venv from pyproject.toml.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test venv broker clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/streamdrift demo

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

broker: $(STAMP)
	$(BIN)/streamdrift broker

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
