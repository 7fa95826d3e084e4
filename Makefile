# Two entry points for a fresh machine (README, "Two commands"):
#   make demo   set up .venv, build the extension, run `dctqa demo`
#   make test   set up .venv, build the extension (CUDA kernels too), check imports, run the test suite
# Each step prints a "==> [step]" line; pip and the build print their own progress below it.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# Building the CUDA half of the extension here needs the real toolkit root and the
# CUDA headers that ship inside torch's wheel (see docs/building.md).
CUDA_HOME ?= /usr/local/cuda
export CUDA_HOME
# GPU architectures: TORCH_CUDA_ARCH_LIST if set, else setup.py's DEFAULT_CUDA_ARCH_LIST
# (T4, A100, A10, L4, H100/H200 and PTX for newer GPUs; about 6 CPU-seconds more than one).
# The torch the extension is built against and then runs with (its C++ ABI changes between
# releases, so the build uses this installed torch: --no-build-isolation). 2.14.1 is the
# newest this machine's pip takes from its local disk (/etc/xdg/pip caps it). They are kept
# as a pip constraint for every install below; `make ... TORCH_PINS=` keeps the torch that a
# machine (a GPU machine's own) already has.
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
PINS_FILE  := $(VENV)/torch-pins.txt
WRITE_PINS := printf '%s\n' $(TORCH_PINS) > $(PINS_FILE)
BUILD_TOOLS := "setuptools>=77" ninja
# The extras of pyproject.toml that `make` installs (all of them: [ray] too, so that `make test`
# runs the Ray engine's tests; `make ... EXTRAS=study,nr,test,torchmetrics` leaves Ray out).
EXTRAS ?= study,nr,test,torchmetrics,ray
# setuptools' "Editable installation ... !!" banner on every editable build (noise, not progress)
export PYTHONWARNINGS := ignore:Editable installation

CSRC := $(shell find csrc third_party -type f 2>/dev/null) setup.py pyproject.toml
PIP_INSTALL := $(PY) -m pip install --progress-bar off --disable-pip-version-check
EXT_INSTALL := CPATH="$$($(PY) -c 'import os,torch;print(os.path.join(os.path.dirname(torch.__file__),"..","nvidia","cu13","include"))'):$$CPATH" \
	  $(PIP_INSTALL) --no-build-isolation -c $(PINS_FILE) -e ".[$(EXTRAS)]"
# `make demo` skips the CUDA kernels when this machine has no GPU (no working nvidia-smi):
# they could not run here and take half the set-up time. `make test` (what CI runs) always
# builds them where a CUDA toolkit exists, so CI keeps compiling the CUDA sources.
HAVE_GPU := $(shell nvidia-smi -L >/dev/null 2>&1 && echo 1)
DEMO_BUILD := $(if $(HAVE_GPU),$(VENV)/.built,$(VENV)/.built-cpu)

.PHONY: setup build build-cpu test demo bench clean
setup: $(VENV)/.installed
$(VENV)/.installed:
	@echo "==> [1/3] creating $(VENV) with $(PYTHON)"
	$(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) -q --upgrade pip
	@echo "==> [2/3] installing $(TORCH_PINS) and the build tools (the largest step: a few GB)"
	$(WRITE_PINS)
	$(PIP_INSTALL) -c $(PINS_FILE) $(TORCH_PINS) $(BUILD_TOOLS)
	touch $@

# The full build: CPU kernels, and the CUDA kernels where a CUDA toolkit is found.
build: $(VENV)/.built
$(VENV)/.built: $(VENV)/.installed $(CSRC)
	@echo "==> [3/3] installing dctqa[$(EXTRAS)] (the dependencies of pyproject.toml), building the extension: C++ kernels$$([ -x $(CUDA_HOME)/bin/nvcc ] && echo " and CUDA kernels (toolkit $(CUDA_HOME))"); several minutes on 2 cores"
	$(WRITE_PINS)
	$(EXT_INSTALL)
	@cat build/dctqa-toolchain.txt 2>/dev/null || true  # the one C++ toolchain used (setup.py)
	touch $@

# CPU kernels only (DCTQA_NO_CUDA=1); kept when a full build of the same sources exists.
build-cpu: $(VENV)/.built-cpu
$(VENV)/.built-cpu: $(VENV)/.installed $(CSRC)
	@if [ -f $(VENV)/.built ] && [ -z "$$(find $(CSRC) -newer $(VENV)/.built)" ]; then \
	  echo "==> [3/3] extension already built (with the CUDA kernels)"; \
	else \
	  echo "==> [3/3] installing dctqa[$(EXTRAS)], building the extension: C++ kernels only (no GPU here, so the CUDA kernels are skipped; make build compiles them)"; \
	  $(WRITE_PINS) && DCTQA_NO_CUDA=1 $(EXT_INSTALL) && { cat build/dctqa-toolchain.txt 2>/dev/null || true; } && rm -f $(VENV)/.built; \
	fi
	touch $@

test: build
	@echo "==> import contracts (lint-imports), then the test suite (pytest)"
	$(VENV)/bin/lint-imports  # the import contracts in .importlinter (docs/architecture.md)
	$(PY) -m pytest -q tests

demo: $(DEMO_BUILD)
	@echo "==> dctqa demo"
	$(VENV)/bin/dctqa demo

bench: build
	$(PY) -m pytest -q benchmarks --benchmark-only

clean:
	rm -rf build dist *.egg-info dctqa/*.so $(VENV)/.built $(VENV)/.built-cpu
