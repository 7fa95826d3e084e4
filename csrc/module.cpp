// Python module dctqa._C. Importing it runs the TORCH_LIBRARY registrations of every
// op in this shared object; the ops are then reached through torch.ops.dctqa. The module
// itself is the control plane's C++ end: configure() takes the settings dctqa.settings
// read (and the tuning of dctqa.ops.tuning) in one call, kernels() reports which op
// kernels this build holds, and the cache of filter spectra is inspected here.
#include <Python.h>

#include <vector>

#include "common/control.h"
#include "common/cpu_features.h"
#include "common/cpu_reduce.h"
#include "spectral_qk/cpu/spectral_core.h"

namespace {

PyObject* spectra_cache_info(PyObject*, PyObject*) {
  const dctqa::cpu::SpectraCacheStats s = dctqa::cpu::spectra_cache_stats();
  return Py_BuildValue("{s:L,s:L,s:L,s:L,s:L}", "bytes", (long long)s.bytes, "entries",
                       (long long)s.entries, "hits", (long long)s.hits, "misses",
                       (long long)s.misses, "max_bytes", (long long)s.max_bytes);
}

PyObject* spectra_cache_clear(PyObject*, PyObject*) {
  dctqa::cpu::spectra_cache_clear();
  Py_RETURN_NONE;
}

PyObject* cpu_kernel_info(PyObject*, PyObject*) {
  const dctqa::cpu::StreamStats s = dctqa::cpu::stream_stats();
  const dctqa::cpu::CpuKernels& k = dctqa::cpu::cpu_kernels();
  return Py_BuildValue("{s:i,s:i,s:O,s:O,s:L,s:L,s:L}", "mode", dctqa::cpu::kernel_mode(), "intrinsics", k.level,
                       "avx512", k.avx512 ? Py_True : Py_False, "avx2_fma", k.avx2_fma ? Py_True : Py_False,
                       "streamed", (long long)s.streamed, "fallbacks", (long long)s.fallbacks, "missed",
                       (long long)s.missed);
}

// *out = the int item `key` of `kw` when present (true) and within [lo, hi]; false with a
// ValueError otherwise. *present tells whether it was given.
bool int_item(PyObject* kw, const char* key, long long lo, long long hi, long long* out, bool* present) {
  PyObject* v = kw ? PyDict_GetItemString(kw, key) : nullptr;  // borrowed
  *present = v != nullptr;
  if (!v) return true;
  const long long n = PyLong_AsLongLong(v);
  if (n == -1 && PyErr_Occurred()) return false;
  if (n < lo || n > hi) {
    PyErr_Format(PyExc_ValueError, "configure: %s must be from %lld to %lld, got %lld", key, lo, hi, n);
    return false;
  }
  *out = n;
  return true;
}

const char* const kConfigKeys[] = {"cpu_chunk_bytes", "cuda_workspace_bytes", "spectra_cache_bytes",
                                   "full_spectra", "intrinsics", "kernel_mode"};

// configure(**settings): any of cpu_chunk_bytes, cuda_workspace_bytes (>= 1),
// spectra_cache_bytes (>= 0; evicts down to it), full_spectra (bool), intrinsics (0 none,
// 1 AVX2 + FMA at most, 2 all: refills the table of x86 paths), kernel_mode (0 auto,
// 1 planes, 2 stream, 3 stream-check). Checks everything before changing anything.
PyObject* configure(PyObject*, PyObject* args, PyObject* kw) {
  if (PyTuple_Size(args) != 0) {
    PyErr_SetString(PyExc_TypeError, "configure takes keyword arguments only");
    return nullptr;
  }
  Py_ssize_t pos = 0;
  PyObject *key, *value;
  while (kw && PyDict_Next(kw, &pos, &key, &value)) {
    bool known = false;
    for (const char* k : kConfigKeys) known = known || PyUnicode_CompareWithASCIIString(key, k) == 0;
    if (!known) {
      PyErr_Format(PyExc_TypeError, "configure: unknown setting %R", key);
      return nullptr;
    }
  }
  constexpr long long kMax = (long long)1 << 50;
  long long chunk = 0, ws = 0, cache = 0, level = 0, mode = 0;
  bool has_chunk, has_ws, has_cache, has_level, has_mode;
  if (!int_item(kw, "cpu_chunk_bytes", 1, kMax, &chunk, &has_chunk) ||
      !int_item(kw, "cuda_workspace_bytes", 1, kMax, &ws, &has_ws) ||
      !int_item(kw, "spectra_cache_bytes", 0, kMax, &cache, &has_cache) ||
      !int_item(kw, "intrinsics", 0, 2, &level, &has_level) || !int_item(kw, "kernel_mode", 0, 3, &mode, &has_mode))
    return nullptr;
  PyObject* full = kw ? PyDict_GetItemString(kw, "full_spectra") : nullptr;
  const int full_on = full ? PyObject_IsTrue(full) : 0;
  if (full_on < 0) return nullptr;
  dctqa::KernelConfig c = dctqa::kernel_config();
  if (has_chunk) c.cpu_chunk_bytes = chunk;
  if (has_ws) c.cuda_workspace_bytes = ws;
  if (full) c.full_spectra = full_on != 0;
  dctqa::set_kernel_config(c);
  if (has_cache) dctqa::cpu::spectra_cache_set_max_bytes((int64_t)cache);
  if (has_level) dctqa::cpu::select_cpu_kernels((int)level);
  if (has_mode) dctqa::cpu::set_kernel_mode((int)mode);
  Py_RETURN_NONE;
}

// The settings in force, as configure() takes them.
PyObject* config(PyObject*, PyObject*) {
  const dctqa::KernelConfig c = dctqa::kernel_config();
  return Py_BuildValue("{s:L,s:L,s:L,s:O,s:i,s:i}", "cpu_chunk_bytes", (long long)c.cpu_chunk_bytes,
                       "cuda_workspace_bytes", (long long)c.cuda_workspace_bytes, "spectra_cache_bytes",
                       (long long)dctqa::cpu::spectra_cache_stats().max_bytes, "full_spectra",
                       c.full_spectra ? Py_True : Py_False, "intrinsics", dctqa::cpu::cpu_kernels().level,
                       "kernel_mode", dctqa::cpu::kernel_mode());
}

// {op: [dispatch keys]} of the kernels compiled into this build.
PyObject* kernels(PyObject*, PyObject*) {
  PyObject* d = PyDict_New();
  if (!d) return nullptr;
  for (const auto& e : dctqa::noted_kernels()) {
    PyObject* keys = PyDict_GetItemString(d, e.first.c_str());  // borrowed
    if (!keys) {
      keys = PyList_New(0);
      if (!keys || PyDict_SetItemString(d, e.first.c_str(), keys) < 0) {
        Py_XDECREF(keys);
        Py_DECREF(d);
        return nullptr;
      }
      Py_DECREF(keys);  // the dict holds it
    }
    PyObject* k = PyUnicode_FromString(e.second.c_str());
    if (!k || PyList_Append(keys, k) < 0) {
      Py_XDECREF(k);
      Py_DECREF(d);
      return nullptr;
    }
    Py_DECREF(k);
  }
  return d;
}

// Test hook: select_ranks (common/cpu_reduce.h) on a float32 buffer, for exactness tests.
PyObject* select_ranks_hook(PyObject*, PyObject* args) {
  Py_buffer view;
  PyObject* ranks;
  int in_place = 0;  // scratch = the values themselves (allowed for one rank)
  if (!PyArg_ParseTuple(args, "y*O|p", &view, &ranks, &in_place)) return nullptr;
  const std::size_t n = (std::size_t)view.len / sizeof(float);
  PyObject* seq = PySequence_Fast(ranks, "ranks must be a sequence of ints");
  PyObject* result = nullptr;
  if (seq != nullptr) {
    const Py_ssize_t m = PySequence_Fast_GET_SIZE(seq);
    std::size_t r[4];
    bool ok = n >= 1 && m >= 1 && m <= 4 && view.len % (Py_ssize_t)sizeof(float) == 0 && (!in_place || m == 1);
    for (Py_ssize_t i = 0; ok && i < m; ++i) {
      const long long v = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(seq, i));
      ok = !PyErr_Occurred() && v >= 0 && (std::size_t)v < n;
      r[i] = (std::size_t)v;
    }
    if (!ok) {
      if (!PyErr_Occurred())
        PyErr_SetString(PyExc_ValueError,
                        "need 1..4 ranks in [0, n) (one when in_place) and a non-empty float32 buffer");
    } else {
      std::vector<float> x((const float*)view.buf, (const float*)view.buf + n), scratch(n + 1);
      float out[4];
      dctqa::cpu::select_ranks(x.data(), n, r, (int)m, out, in_place ? x.data() : scratch.data());
      result = PyList_New(m);
      for (Py_ssize_t i = 0; i < m; ++i) PyList_SET_ITEM(result, i, PyFloat_FromDouble(out[i]));
    }
    Py_DECREF(seq);
  }
  PyBuffer_Release(&view);
  return result;
}

PyMethodDef methods[] = {
    {"configure", (PyCFunction)(void (*)(void))configure, METH_VARARGS | METH_KEYWORDS,
     "Hand the kernels their settings (keywords: cpu_chunk_bytes, cuda_workspace_bytes, "
     "spectra_cache_bytes, full_spectra, intrinsics, kernel_mode); dctqa.settings calls it."},
    {"config", config, METH_NOARGS, "The settings in force, as configure() takes them."},
    {"kernels", kernels, METH_NOARGS, "{op: [dispatch keys]} of the op kernels compiled into this build."},
    {"spectra_cache_info", spectra_cache_info, METH_NOARGS,
     "The filter-spectra cache: {bytes, entries, hits, misses, max_bytes}."},
    {"spectra_cache_clear", spectra_cache_clear, METH_NOARGS,
     "Empty the filter-spectra cache and reset its counters."},
    {"cpu_kernel_info", cpu_kernel_info, METH_NOARGS,
     "CPU spectral kernel: {mode, intrinsics, avx512, avx2_fma, streamed, fallbacks, missed}."},
    {"_select_ranks", select_ranks_hook, METH_VARARGS,
     "Test hook: the values of ranks (1..4) among a float32 buffer, by the CPU kernels' selection."},
    {nullptr, nullptr, 0, nullptr}};

struct PyModuleDef dctqa_c_module = {PyModuleDef_HEAD_INIT, "_C",
                                     "dctqa fused torch ops (torch.ops.dctqa)", -1, methods};

}  // namespace

PyMODINIT_FUNC PyInit__C(void) { return PyModule_Create(&dctqa_c_module); }
