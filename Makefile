# Two entry points for a fresh machine:
#   make demo   set up .venv, build the extension, run `dctqa demo`
#   make test   set up .venv, build the extension, run the test suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# Building the CUDA half of the extension here needs the real toolkit root and the
# CUDA headers that ship inside torch's wheel (see README, "Building").
CUDA_HOME ?= /usr/local/cuda
TORCH_CUDA_ARCH_LIST ?= 9.0
export CUDA_HOME TORCH_CUDA_ARCH_LIST

CSRC := $(shell find csrc -type f 2>/dev/null) setup.py

.PHONY: setup build test demo bench clean
setup: $(VENV)/.installed
$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $@

build: $(VENV)/.built
$(VENV)/.built: $(VENV)/.installed $(CSRC)
	CPATH="$$($(PY) -c 'import os,torch;print(os.path.join(os.path.dirname(torch.__file__),"..","nvidia","cu13","include"))'):$$CPATH" \
	  $(PY) -m pip install -q --no-build-isolation --no-deps -e .
	@cat build/dctqa-toolchain.txt 2>/dev/null || true  # the one C++ toolchain used (setup.py)
	touch $@

test: build
	$(VENV)/bin/lint-imports  # the import contracts in .importlinter (README, "Architecture")
	$(PY) -m pytest -q tests

demo: build
	$(VENV)/bin/dctqa demo

bench: build
	$(PY) -m pytest -q benchmarks --benchmark-only

clean:
	rm -rf build *.egg-info dctqa/*.so $(VENV)/.built
