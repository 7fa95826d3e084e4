// The extension's control plane in C++: the settings dctqa.settings hands over (one call,
// _C.configure, at load and on settings.reload()), and the record of which op kernels this
// build holds (_C.kernels(), what dctqa.ops.dispatch reports as available). No op reads
// the environment; the values below are plain loads.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace dctqa {

// Byte budgets and switches of the kernels (defaults: those of dctqa.settings.ENV).
struct KernelConfig {
  int64_t cpu_chunk_bytes = int64_t(64) << 20;       // DCTQA_CPU_CHUNK_MB
  int64_t cuda_workspace_bytes = int64_t(256) << 20;  // DCTQA_CUDA_WORKSPACE_MB
  bool full_spectra = true;                           // DCTQA_FULL_SPECTRA
};
KernelConfig kernel_config();             // the values in force
void set_kernel_config(const KernelConfig& c);  // budgets must be >= 1 (checked by the caller)

// Records that `op` has a kernel for dispatch key `key` ("CPU", "CUDA") in this build; used
// beside each TORCH_LIBRARY_IMPL (DCTQA_KERNEL). Returns true (for a static initialiser).
bool note_kernel(const char* op, const char* key);
std::vector<std::pair<std::string, std::string>> noted_kernels();

}  // namespace dctqa

// Registers `fn` as the `key` kernel of dctqa::`op` and records it for _C.kernels().
#define DCTQA_KERNEL(key, op, fn)                                         \
  TORCH_LIBRARY_IMPL(dctqa, key, m) { m.impl(op, fn); }                   \
  namespace {                                                             \
  const bool dctqa_kernel_noted_ = ::dctqa::note_kernel(op, #key);        \
  }
