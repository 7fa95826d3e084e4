// The extension's control plane in C++ (control.h).
#include "common/control.h"

#include <atomic>
#include <mutex>

namespace dctqa {

namespace {
std::atomic<int64_t> g_chunk{int64_t(64) << 20}, g_workspace{int64_t(256) << 20};
std::atomic<bool> g_full{true};

struct Noted {
  std::mutex mu;
  std::vector<std::pair<std::string, std::string>> kernels;
};
Noted& noted() {
  static Noted* n = new Noted();  // never destroyed: safe at exit
  return *n;
}
}  // namespace

KernelConfig kernel_config() {
  KernelConfig c;
  c.cpu_chunk_bytes = g_chunk.load(std::memory_order_relaxed);
  c.cuda_workspace_bytes = g_workspace.load(std::memory_order_relaxed);
  c.full_spectra = g_full.load(std::memory_order_relaxed);
  return c;
}

void set_kernel_config(const KernelConfig& c) {
  g_chunk.store(c.cpu_chunk_bytes < 1 ? 1 : c.cpu_chunk_bytes);
  g_workspace.store(c.cuda_workspace_bytes < 1 ? 1 : c.cuda_workspace_bytes);
  g_full.store(c.full_spectra);
}

bool note_kernel(const char* op, const char* key) {
  Noted& n = noted();
  std::lock_guard<std::mutex> lock(n.mu);
  n.kernels.emplace_back(op, key);
  return true;
}

std::vector<std::pair<std::string, std::string>> noted_kernels() {
  Noted& n = noted();
  std::lock_guard<std::mutex> lock(n.mu);
  return n.kernels;
}

}  // namespace dctqa
