PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# Test workers (pytest-xdist): tests that share a built world of runs stay on one worker.
TEST_WORKERS ?= 2
XDIST := -n $(TEST_WORKERS) --dist loadgroup
DEMO_OUT ?= runs/demo

.PHONY: venv test test-all demo lint format bench clean

venv: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall only when pyproject.toml changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e '.[test]'
	touch $(STAMP)

# Skip reasons are shown (-rs); tests marked slow are left out (see pyproject.toml).
test: venv
	$(BIN)/python -m pytest -rs $(XDIST) $(PYTEST_ARGS)

# Every test, the slow ones too: run before a change is merged.
test-all: venv
	$(BIN)/python -m pytest -rs -m "slow or not slow" $(XDIST) $(PYTEST_ARGS)

# NAS_DEMO_QUICK=1 runs the same steps at a size that only checks they work.
demo: venv
	$(BIN)/nas demo --out $(DEMO_OUT)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: venv
	$(BIN)/python benchmarks/extract_overhead.py

clean:
	find . -path ./$(VENV) -prune -o -path ./runs -prune -o \
		-type d \( -name __pycache__ -o -name '*.egg-info' \) -print0 | xargs -0 rm -rf
	rm -rf .pytest_cache .ruff_cache build dist
