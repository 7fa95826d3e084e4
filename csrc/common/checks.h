// Argument checks and environment readers shared by the CPU and CUDA entry points of every op
// (each op's own argument checks: csrc/<op>/<op>_checks.h).
#pragma once
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cmath>
#include <cstdlib>
#include <string>

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

namespace dctqa {

// A byte budget read from environment variable `name` in whole MiB (1 .. 2^30), else
// `default_mb`. A malformed or out-of-range value throws (c10::Error -> RuntimeError);
// dctqa.settings.check_op_env() rejects such values in Python before any op is called.
inline int64_t env_budget_bytes(const char* name, int64_t default_mb) {
  const char* s = std::getenv(name);
  if (s == nullptr) return default_mb << 20;
  while (std::isspace((unsigned char)*s)) ++s;
  if (*s == '\0') return default_mb << 20;
  errno = 0;
  char* end = nullptr;
  const long long mb = std::strtoll(s, &end, 10);
  while (end && std::isspace((unsigned char)*end)) ++end;
  const bool ok = errno == 0 && end != s && end && *end == '\0' && mb >= 1 &&
                  mb <= (int64_t(1) << 30);
  TORCH_CHECK(ok, "dctqa: environment variable ", name,
              " must be a whole number of MiB from 1 to 2^30");
  return (int64_t)mb << 20;
}

// A byte bound read from environment variable `name` in MiB, any number from 0 to 2^30
// (fractions allowed: 0.5 = 512 KiB; 0 = nothing kept), else `default_mb`; bytes =
// floor(MiB * 2^20), as dctqa.settings.spectra_cache_bytes() computes it. A malformed or
// out-of-range value throws, with the same rule as the Python reader.
inline int64_t env_bound_bytes(const char* name, double default_mb) {
  const char* s = std::getenv(name);
  double mb = default_mb;
  if (s != nullptr) {
    while (std::isspace((unsigned char)*s)) ++s;
    if (*s != '\0') {
      errno = 0;
      char* end = nullptr;
      mb = std::strtod(s, &end);
      while (end && std::isspace((unsigned char)*end)) ++end;
      const bool ok = errno == 0 && end != s && end && *end == '\0' && std::isfinite(mb) &&
                      mb >= 0 && mb <= (double)(int64_t(1) << 30);
      TORCH_CHECK(ok, "dctqa: environment variable ", name,
                  " must be a number of MiB from 0 to 2^30");
    }
  }
  return (int64_t)(mb * (double)(int64_t(1) << 20));
}

// An on/off environment variable: 1/true/yes/on or 0/false/no/off in any case (unset or
// empty: `default_on`); anything else throws. The rule of dctqa.settings.env_flag().
inline bool env_flag(const char* name, bool default_on) {
  const char* s = std::getenv(name);
  if (s == nullptr) return default_on;
  while (std::isspace((unsigned char)*s)) ++s;
  std::string v;
  for (; *s; ++s) v += (char)std::tolower((unsigned char)*s);
  while (!v.empty() && std::isspace((unsigned char)v.back())) v.pop_back();
  if (v.empty()) return default_on;
  if (v == "1" || v == "true" || v == "yes" || v == "on") return true;
  if (v == "0" || v == "false" || v == "no" || v == "off") return false;
  TORCH_CHECK(false, "dctqa: environment variable ", name,
              " must be 1/true/yes/on or 0/false/no/off");
  return default_on;
}

inline void check_float32(const at::Tensor& t, const char* name, int64_t dim) {
  TORCH_CHECK(t.scalar_type() == at::kFloat, "dctqa: ", name, " must be float32, got ",
              t.scalar_type());
  TORCH_CHECK(t.dim() == dim, "dctqa: ", name, " must have ", dim, " dimensions, got ",
              t.dim());
}

}  // namespace dctqa
