// Python module dctqa._C. Importing it runs the TORCH_LIBRARY registrations of every
// op in this shared object; the ops are then reached through torch.ops.dctqa. The module
// itself holds the controls of the CPU cache of filter spectra.
#include <Python.h>

#include <vector>

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

PyObject* spectra_cache_set_max_bytes(PyObject*, PyObject* arg) {
  const long long n = PyLong_AsLongLong(arg);
  if (n == -1 && PyErr_Occurred()) return nullptr;
  if (n < 0) {
    PyErr_SetString(PyExc_ValueError, "max_bytes must be >= 0");
    return nullptr;
  }
  dctqa::cpu::spectra_cache_set_max_bytes((int64_t)n);
  Py_RETURN_NONE;
}

PyObject* cpu_kernel_info(PyObject*, PyObject*) {
  const dctqa::cpu::StreamStats s = dctqa::cpu::stream_stats();
  return Py_BuildValue("{s:i,s:i,s:O,s:O,s:L,s:L,s:L}", "mode", dctqa::cpu::kernel_mode(), "intrinsics",
                       dctqa::cpu::intrinsics_level(), "avx512",
                       dctqa::cpu::use_avx512() ? Py_True : Py_False, "avx2_fma",
                       dctqa::cpu::use_avx2_fma() ? Py_True : Py_False, "streamed",
                       (long long)s.streamed, "fallbacks", (long long)s.fallbacks, "missed",
                       (long long)s.missed);
}

// *out = the int `arg` when it lies in [0, max]; else false with a ValueError naming `choices`.
bool int_choice(PyObject* arg, long max, const char* choices, int* out) {
  const long n = PyLong_AsLong(arg);
  if (n == -1 && PyErr_Occurred()) return false;
  if (n < 0 || n > max) {
    PyErr_SetString(PyExc_ValueError, choices);
    return false;
  }
  *out = (int)n;
  return true;
}

PyObject* set_cpu_kernel_mode(PyObject*, PyObject* arg) {
  int mode;
  if (!int_choice(arg, 3, "mode must be 0 (auto), 1 (planes), 2 (stream) or 3 (stream, check)", &mode))
    return nullptr;
  dctqa::cpu::set_kernel_mode(mode);
  Py_RETURN_NONE;
}

PyObject* set_cpu_intrinsics(PyObject*, PyObject* arg) {
  int level;
  if (!int_choice(arg, 2, "level must be 0 (none), 1 (AVX2 + FMA at most) or 2 (all)", &level)) return nullptr;
  dctqa::cpu::set_intrinsics_level(level);
  Py_RETURN_NONE;
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
    {"spectra_cache_info", spectra_cache_info, METH_NOARGS,
     "CPU filter-spectra cache: {bytes, entries, hits, misses, max_bytes}."},
    {"spectra_cache_clear", spectra_cache_clear, METH_NOARGS,
     "Empty the CPU filter-spectra cache and reset its counters."},
    {"spectra_cache_set_max_bytes", spectra_cache_set_max_bytes, METH_O,
     "Set the byte bound of the CPU filter-spectra cache (evicts down to it)."},
    {"cpu_kernel_info", cpu_kernel_info, METH_NOARGS,
     "CPU spectral kernel: {mode, streamed, fallbacks} (counts of (frame, filter) results)."},
    {"set_cpu_kernel_mode", set_cpu_kernel_mode, METH_O,
     "CPU spectral kernel: 0 auto, 1 planes, 2 stream when possible, 3 stream then fallback."},
    {"set_cpu_intrinsics", set_cpu_intrinsics, METH_O,
     "Hand-written x86 paths of the CPU kernels: 2 all (default), 1 AVX2 + FMA at most, 0 none."},
    {"_select_ranks", select_ranks_hook, METH_VARARGS,
     "Test hook: the values of ranks (1..4) among a float32 buffer, by the CPU kernels' selection."},
    {nullptr, nullptr, 0, nullptr}};

struct PyModuleDef dctqa_c_module = {PyModuleDef_HEAD_INIT, "_C",
                                     "dctqa fused torch ops (torch.ops.dctqa)", -1, methods};

}  // namespace

PyMODINIT_FUNC PyInit__C(void) { return PyModule_Create(&dctqa_c_module); }
