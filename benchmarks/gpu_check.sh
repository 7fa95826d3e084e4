#!/usr/bin/env bash
# GPU check (< 8 min): build dctqa._C with its CUDA kernels against the torch found on
# this machine (no network needed), run the CUDA tests, run the GPU benchmark, print
# one table. Usage: bash benchmarks/gpu_check.sh   (from the repository root)
# Env: PYTHON (default .venv/bin/python if present, else python3), OUT (folder for
# logs and JSON, default /tmp/dctqa_gpu_check).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ -z "${PYTHON:-}" ] && [ -x .venv/bin/python ]; then PY=.venv/bin/python; fi
OUT=${OUT:-/tmp/dctqa_gpu_check}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
$PY -c "import torch,sys; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'device', torch.cuda.is_available() and torch.cuda.get_device_name(0)); sys.exit(0 if torch.cuda.is_available() else 3)" || { echo "no usable CUDA torch"; exit 3; }

# The real toolkit root (the nvcc on PATH may be a wrapper) and torch's bundled CUDA headers.
if [ -z "${CUDA_HOME:-}" ]; then
  for c in /usr/local/cuda "$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")"; do
    [ -x "$c/bin/nvcc" ] && export CUDA_HOME=$c && break
  done
fi
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
TORCH_NV_INC=$($PY -c 'import glob,os,torch; print(":".join(glob.glob(os.path.join(os.path.dirname(torch.__file__),"..","nvidia","cu[0-9]*","include"))))')
export CPATH="${TORCH_NV_INC}${CPATH:+:$CPATH}"
export MAX_JOBS=${MAX_JOBS:-$(nproc)}
echo "CUDA_HOME=$CUDA_HOME TORCH_CUDA_ARCH_LIST=$TORCH_CUDA_ARCH_LIST MAX_JOBS=$MAX_JOBS"

t0=$(date +%s)
rm -f dctqa/_C*.so
if ! timeout 400 $PY setup.py -q build_ext --inplace > "$OUT/build.log" 2>&1; then
  echo "BUILD FAILED (last lines of $OUT/build.log):"; tail -30 "$OUT/build.log"; exit 4
fi
echo "build: $(( $(date +%s) - t0 )) s"
grep -m1 "dctqa build:" "$OUT/build.log" || true   # the one toolchain the build used (setup.py)
$PY -c "from dctqa import ops; a = ops.available(); print(a); import sys; sys.exit(0 if a['cuda'] else 5)" || { echo "CUDA kernels not registered"; exit 5; }

status=0
if $PY -c "import pytest" 2>/dev/null; then
  # CUDA tests of the ops and of the API (edge cases equal to the CPU op, errors raised as
  # exceptions, synchronised device->host copies): every test whose id contains "cuda".
  timeout 240 $PY -m pytest -q -p no:cacheprovider tests/test_ops.py tests/test_fuzz_api.py tests/test_nr_sampling.py \
    -k "cuda or opcheck or compile" -rs \
    2>&1 | tee "$OUT/tests.log" | tail -15
  status=${PIPESTATUS[0]}
else
  echo "pytest missing: CUDA tests not run"; status=6
fi

timeout 200 $PY benchmarks/gpu_bench.py --quick --json "$OUT/gpu_bench.json" 2>&1 | tee "$OUT/bench.log"
echo "total: $(( $(date +%s) - t0 )) s; tests exit status $status"
exit $status
